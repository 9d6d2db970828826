"""What the mapper's training costs, analytically, and the throughput it is held to.

``benchmarks/train_throughput.py`` measures against these; ``recipes/tables/cost.py`` prices the paper
grid with them. Multiply-add = 2 FLOPs, backward = 2 x forward, hence the factor 6 = 2 fwd + 4 bwd:

    T      = S + N - 1                       GPT-2 sequence: S fused tokens + N-1 teacher-forced targets
    P_gpt2 = L * 12 * D^2                     matmul weights per GPT-2 block: qkv 3D^2, proj D^2, mlp 4D^2 + 4D^2
    P_fuse = (Dc + Dt) * D                    concat_proj fusion Linear, applied to the S fused tokens
    flops/sample = 6 * P_gpt2 * T             GPT-2 dense layers, forward + backward
                 + 12 * L * T^2 * D           attention scores QK^T and weighted sum AV (2 * 2T^2 D forward), x3
                 + 6 * P_fuse * S             fusion projection, forward + backward
                 + 2 * S * (W*Q) * Dt         TimeChat -> frame alignment matmul (forward only: no grad needed)

Biases, LayerNorm, GELU, softmax, dropout and the optimizer are not counted (bandwidth-bound; the 6N
rule ignores them). Attention is counted as full T x T (causality not discounted). Paper shapes:
L=12, D=768, S=40, N=8, T=47, Dc=512, Dt=768, W*Q=64 -> 24.44 GFLOP per training sample.
"""
from __future__ import annotations

GPU_TRAIN_GOAL = 5000.0  # samples/s of the paper's mapper on one H100 at bf16, through Lightning


def train_flops_per_sample(config) -> dict[str, float]:
    """Analytic training FLOPs per sample (forward + backward) of a `MapperConfig`, term by term and "total"."""
    streams = config.selected_streams
    if config.fusion != "concat_proj" or list(streams) != ["cavp", "timechat"] or config.mapper_type != "autoregressive":
        raise ValueError("FLOP count written for the paper mapper (autoregressive, cavp + timechat, concat_proj)")
    L, D = config.n_layer, config.audio_token_dim
    S, N = config.prefix_length, config.num_audio_tokens
    T = S + N - 1
    Dc, Dt, WQ = streams["cavp"].dim, streams["timechat"].dim, streams["timechat"].num_tokens
    terms = {
        "gpt2 dense 6*L*12D^2*T": 6 * L * 12 * D * D * T,
        "attention 12*L*T^2*D": 12 * L * T * T * D,
        "fusion 6*(Dc+Dt)*D*S": 6 * (Dc + Dt) * D * S,
        "align 2*S*WQ*Dt": 2 * S * WQ * Dt,
    }
    terms["total"] = sum(terms.values())
    return terms


def non_embedding_params(module) -> int:
    """Parameters outside GPT-2's token and position tables (the 6N rule's N)."""
    return sum(p.numel() for n, p in module.named_parameters() if not n.endswith(("wte.weight", "wpe.weight")))
