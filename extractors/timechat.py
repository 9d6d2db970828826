"""TimeChat's visual side: timestamp-aware frame tokens compressed by a sliding-window Q-Former.

Everything before TimeChat's LLM, from ``RenShuhuai-Andy/TimeChat`` ``timechat/models/timechat.py``
(``encode_videoQformer_visual`` with ``qformer_text_input=True``, ``window_size = stride = 32``,
``max_frame_pos = 96`` as in ``eval_configs/timechat.yaml``), ``eva_vit.py`` and ``blip2.py``:

1. EVA-ViT-g (39 blocks, no final norm, all 257 tokens) on each frame, then ``ln_vision``;
2. frame Q-Former (InstructBLIP BERT-base): 32 learned queries plus the text
   ``"This frame is sampled at {t} second."``, ``t = round(frame_idx / fps, 1)``; the *whole* last
   hidden state goes on, i.e. the 32 query outputs followed by the text-token outputs (TimeChat
   reads ``query_output.last_hidden_state`` without slicing off the text, unlike InstructBLIP);
3. ``+ video_frame_position_embedding(frame index)`` on every token of a frame;
4. for each window ``[s, s + 32)``, ``s = 0, 32, ...``: the window's frames are flattened to
   one (32 * (32 + L)) x 768 memory; a 2-layer BERT "video Q-Former" with 32 queries cross-attends
   to it (all tokens, text padding included: TimeChat's mask there is all ones) -> 32 x 768 tokens.
   40 frames -> windows [0:32] and [32:40] -> 64 x 768 (``llama_proj`` would map them to LLaMA).

Implementation choices (all documented facts checked against the sources above):

* EVA-ViT-g is timm's ``Eva`` built from arguments (keys identical to LAVIS' ``eva_vit_g.pth``;
  ``tests/test_fidelity.py`` checks it against the original on a tiny golden). LAVIS' attention
  computes ``softmax(q k^T)`` by hand, timm calls ``scaled_dot_product_attention``: same maths.
* Precision (``TimeChatConfig.precision``): TimeChat builds EVA-ViT-g with ``vit_precision="fp16"``
  (LAVIS ``convert_weights_to_fp16``: only Conv/Linear weights and biases become fp16; LayerNorms,
  ``q_bias``/``v_bias``, ``cls_token``, ``pos_embed`` stay fp32) and runs ViT *and both Q-Formers*
  under ``autocast(float16)`` (``maybe_autocast``; a no-op on CPU). ``precision="fp16"`` (the paper
  preset) or ``"bf16"`` does exactly that, on any device with autocast (CPU included); ``"fp32"``
  runs everything in float32 (tiny presets, and the golden tests). The residual streams stay fp32
  under autocast (fp32 position embeddings promote them), so only matmuls/convs run in half.
* ``ln_vision`` is LAVIS' ``LayerNorm`` subclass: computed in fp32, cast back to the input dtype.
* Q-Former attention masks: LAVIS adds ``(1 - mask) * -10000``, transformers masks with the dtype's
  minimum (or a boolean mask); after softmax both give exactly 0 weight in fp32, and every row keeps
  its unmasked query positions, so the results agree (checked on a golden with padded timestamps).
* The frame Q-Former is transformers' ``InstructBlipQFormerModel`` (query + text input, text FFN,
  cross-attention every 2nd layer), the video Q-Former is ``Blip2QFormerModel`` with
  ``use_qformer_text_input=False``: LayerNorm on the query embeddings, then layers with query FFN
  only -- exactly LAVIS ``BertModel(query_embeds=...)`` with word/position embeddings and text FFN
  removed, as TimeChat does; so its keys match ``video_Qformer.bert.*`` one to one
  (``InstructBlipQFormerModel(input_ids=None)`` computes the same but carries an unused vocabulary).
* Timestamp tokenizer: TimeChat's demo (``Chat.upload_video_without_audio``) tokenizes the
  timestamps with the Q-Former's BERT tokenizer (bert-base-uncased), while its training pipeline
  and some eval scripts (e.g. MVBench) use ``llama_tokenizer`` -- a known inconsistency. We use
  BERT, the Q-Former's own vocabulary (LLaMA ids would index unrelated BERT embeddings).
  Tiny presets use ``tokenizer="builtin"``: a WordPiece vocabulary built in code (the sentence's
  words, ``.``, ``0``..``99``, ``##0``..``##9``) that splits the sentence into the same pieces as
  bert-base-uncased for t < 100 s: ``[CLS] this frame is sampled at 0 . 0 second . [SEP]``
  (ids differ; the paper preset loads the real vocabulary).

Length: one model per file (config, architecture, checkpoint conversion and loading read top to
bottom, as nanoGPT's model.py); the converter's key rules need the architecture beside them.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, replace
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.eva import Eva
from transformers import (Blip2QFormerConfig, Blip2QFormerModel, BertTokenizerFast, InstructBlipQFormerConfig,
                          InstructBlipQFormerModel)

from extractors.checkpoint import check_keys, load_strict, read_checkpoint
from extractors.clip import ClipConfig
from extractors.encoders import StreamSpec, register_encoder
from extractors.frames import resize_frames

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Released checkpoints, loaded in this order (later files override earlier keys).
TIMECHAT_FILES = {
    "eva_vit_g.pth": "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/models/BLIP2/eva_vit_g.pth",
    "instruct_blip_vicuna7b_trimmed.pth": "https://storage.googleapis.com/sfr-vision-language-research/LAVIS/"
                                          "models/InstructBLIP/instruct_blip_vicuna7b_trimmed.pth",
    "timechat_7b.pth": "Hugging Face repo ShuhuaiRen/TimeChat-7b",
}

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}

BUILTIN_TOKENIZER = "builtin"
_BUILTIN_VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "this", "frame", "is", "sampled", "at", "second", "."]
                  + [str(i) for i in range(100)] + [f"##{i}" for i in range(10)])


@dataclass(frozen=True)
class TimeChatConfig:
    # Frames: squash-resize, /255, CLIP normalisation (TimeChat's alpro_video_eval processor).
    image_size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    # EVA-ViT-g (LAVIS create_eva_vit_g): 224 / 14 -> 16 x 16 patches + CLS = 257 tokens.
    vit_patch_size: int = 14
    vit_width: int = 1408
    vit_depth: int = 39  # EVA-CLIP-g has 40 blocks; BLIP-2 drops the last one
    vit_heads: int = 16  # 1408 // 88
    vit_mlp_ratio: float = 6144 / 1408  # MLP width 6144 (LAVIS writes 4.3637)
    vit_layer_norm_eps: float = 1e-6
    ln_vision_eps: float = 1e-5  # ln_vision: LAVIS LayerNorm (fp32 compute), torch default eps
    # Frame Q-Former (InstructBLIP's BERT-base with cross-attention every 2nd layer).
    num_query_tokens: int = 32
    qformer_hidden: int = 768
    qformer_layers: int = 12
    qformer_heads: int = 12
    qformer_intermediate: int = 3072
    qformer_cross_attention_freq: int = 2
    qformer_vocab_size: int = 30523  # bert-base-uncased 30522 + the "[DEC]" bos token LAVIS adds
    qformer_max_positions: int = 512
    timestamp_template: str = "This frame is sampled at {} second."
    tokenizer: str = "bert-base-uncased"  # BERT tokenizer folder (under weights_dir when loading weights) or "builtin"
    max_text_len: int = 32  # TimeChat's tokenizer truncation length
    # Video Q-Former (2-layer BERT, cross-attention in every layer to the frame Q-Former width).
    video_num_query_tokens: int = 32
    video_qformer_hidden: int = 768
    video_qformer_layers: int = 2
    video_qformer_heads: int = 12
    video_qformer_intermediate: int = 3072
    window: int = 32  # frames per video Q-Former window
    stride: int = 32  # window start spacing (window == stride: non-overlapping)
    max_frame_pos: int = 96  # rows of the frame position embedding = max frames per clip
    # Random-init std of Q-Former weights and query tokens (BERT / LAVIS: 0.02). Irrelevant once
    # weights are loaded; random tiny models use a larger value, because with 0.02 their attention
    # is nearly uniform and the tokens hardly depend on the video.
    qformer_init_std: float = 0.02
    # "fp32", or "fp16" / "bf16": TimeChat's mixed precision (ViT Conv/Linear weights stored in that
    # dtype, ViT + Q-Formers under autocast; LayerNorms, embeddings and residual streams in fp32).
    precision: str = "fp32"

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, not {self.precision!r}")

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The half dtype of the mixed-precision mode, None in fp32."""
        return PRECISIONS[self.precision]

    @property
    def hidden(self) -> int:
        """Width of the output tokens."""
        return self.video_qformer_hidden

    def num_windows(self, num_frames: int) -> int:
        return len(self.window_spans(num_frames))

    def window_spans(self, num_frames: int) -> list[tuple[int, int]]:
        """[start, end) frame index of each video Q-Former window, as TimeChat's loop slices them."""
        return [(s, min(s + self.window, num_frames)) for s in range(0, num_frames, self.stride)]

    def num_tokens(self, num_frames: int) -> int:
        return self.num_windows(num_frames) * self.video_num_query_tokens

    def stream(self, num_frames: int) -> StreamSpec:
        """``video_num_query_tokens`` tokens per window of ``window`` frames."""
        return StreamSpec(self.hidden, tuple(self.window_spans(num_frames)), self.video_num_query_tokens)

    def to_dict(self) -> dict:
        return asdict(self)


def build_tokenizer(name: str) -> BertTokenizerFast:
    """The timestamp tokenizer: ``"builtin"`` (offline, in code) or a BERT tokenizer folder / hub id."""
    if name == BUILTIN_TOKENIZER:
        return BertTokenizerFast(vocab={w: i for i, w in enumerate(_BUILTIN_VOCAB)}, do_lower_case=True)
    try:
        return BertTokenizerFast.from_pretrained(name, local_files_only=True)  # a folder or the HF cache: never online
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"BERT tokenizer {name!r} not found (TimeChat needs bert-base-uncased's vocabulary: put the "
            f"Hugging Face 'bert-base-uncased' tokenizer files in that folder)") from err


class Fp32LayerNorm(nn.LayerNorm):
    """LAVIS' ``LayerNorm`` (``ln_vision``): normalises in float32, returns the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def cast_conv_linear_(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """LAVIS ``convert_weights_to_fp16`` (any half dtype): Conv/Linear weights and biases only."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            m.weight.data = m.weight.data.to(dtype)
            if m.bias is not None:
                m.bias.data = m.bias.data.to(dtype)
    return module


class TimeChatVisual(nn.Module):
    """Frames (B, T, 3, S, S) -> (window tokens (B, W * Q, hidden), spans (W, 2) long).

    The steps are exposed separately (``encode_images``, ``timestamp_tokens``,
    ``encode_image_embeds``) so each can be checked against TimeChat's own intermediates.
    """

    def __init__(self, cfg: TimeChatConfig = TimeChatConfig(), tokenizer: BertTokenizerFast | None = None):
        super().__init__()
        self.cfg = cfg
        self._tokenizer = tokenizer  # built lazily from cfg.tokenizer: not needed to load weights
        self.visual_encoder = Eva(
            img_size=cfg.image_size,
            patch_size=cfg.vit_patch_size,
            embed_dim=cfg.vit_width,
            depth=cfg.vit_depth,
            num_heads=cfg.vit_heads,
            mlp_ratio=cfg.vit_mlp_ratio,
            qkv_bias=True,  # LAVIS: q and v biases, k bias fixed at zero
            norm_layer=partial(nn.LayerNorm, eps=cfg.vit_layer_norm_eps),
            num_classes=0,
            global_pool="",
            use_post_transformer_norm=False,  # LAVIS' forward_features returns the last block's output
        )
        self.ln_vision = Fp32LayerNorm(cfg.vit_width, eps=cfg.ln_vision_eps)
        self.frame_qformer = InstructBlipQFormerModel(InstructBlipQFormerConfig(
            vocab_size=cfg.qformer_vocab_size,
            hidden_size=cfg.qformer_hidden,
            num_hidden_layers=cfg.qformer_layers,
            num_attention_heads=cfg.qformer_heads,
            intermediate_size=cfg.qformer_intermediate,
            max_position_embeddings=cfg.qformer_max_positions,
            cross_attention_frequency=cfg.qformer_cross_attention_freq,
            encoder_hidden_size=cfg.vit_width,
            initializer_range=cfg.qformer_init_std,
            layer_norm_eps=1e-12,  # BERT's (also the embeddings LayerNorm that the queries go through)
            hidden_act="gelu",  # exact GELU
        ))
        self.query_tokens = nn.Parameter(
            torch.zeros(1, cfg.num_query_tokens, cfg.qformer_hidden).normal_(std=cfg.qformer_init_std))
        self.frame_position_embedding = nn.Embedding(cfg.max_frame_pos, cfg.qformer_hidden)
        self.video_qformer = Blip2QFormerModel(Blip2QFormerConfig(
            hidden_size=cfg.video_qformer_hidden,
            num_hidden_layers=cfg.video_qformer_layers,
            num_attention_heads=cfg.video_qformer_heads,
            intermediate_size=cfg.video_qformer_intermediate,
            cross_attention_frequency=1,  # TimeChat init_video_Qformer: cross-attention in every layer
            encoder_hidden_size=cfg.qformer_hidden,
            use_qformer_text_input=False,
            initializer_range=cfg.qformer_init_std,
            layer_norm_eps=1e-12,
            hidden_act="gelu",
        ))
        self.video_query_tokens = nn.Parameter(
            torch.zeros(1, cfg.video_num_query_tokens, cfg.video_qformer_hidden).normal_(std=cfg.qformer_init_std))
        self.register_buffer("pixel_mean", torch.tensor(cfg.mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(cfg.std).view(1, 1, 3, 1, 1), persistent=False)
        if cfg.autocast_dtype is not None:  # TimeChat: vit_precision="fp16"
            cast_conv_linear_(self.visual_encoder, cfg.autocast_dtype)

    @property
    def tokenizer(self) -> BertTokenizerFast:
        if self._tokenizer is None:
            self._tokenizer = build_tokenizer(self.cfg.tokenizer)
            if len(self._tokenizer) > self.cfg.qformer_vocab_size:
                raise ValueError(f"tokenizer has {len(self._tokenizer)} tokens, more than the Q-Former "
                                 f"vocabulary ({self.cfg.qformer_vocab_size})")
        return self._tokenizer

    def autocast(self, device: torch.device):
        """TimeChat's ``maybe_autocast``: autocast to the configured half dtype (no-op in fp32).

        Devices without autocast (``meta``) run as is; only shapes matter there.
        """
        dtype = self.cfg.autocast_dtype
        if dtype is None or not torch.amp.is_autocast_available(device.type):
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    def preprocess(self, frames_uint8: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 -> (B, T, 3, S, S) float: squash resize, /255, CLIP mean/std."""
        x = resize_frames(frames_uint8, self.cfg.image_size) / 255.0
        return (x - self.pixel_mean.to(x.device)) / self.pixel_std.to(x.device)

    def timestamps(self, num_frames: int, fps: float) -> list[str]:
        """TimeChat's per-frame sentences; ``str(round(i / fps, 1))`` exactly as its ``load_video``."""
        return [self.cfg.timestamp_template.format(round(i / fps, 1)) for i in range(num_frames)]

    def timestamp_tokens(self, num_frames: int, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenised timestamp sentences, ``padding="longest"`` as TimeChat: ids and mask, (T, L) each."""
        text = self.tokenizer(self.timestamps(num_frames, fps), padding="longest", truncation=True,
                              max_length=self.cfg.max_text_len)
        return (torch.tensor(text["input_ids"], device="cpu"),  # CPU even under a meta default device
                torch.tensor(text["attention_mask"], device="cpu"))

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised pixels -> ``ln_vision(EVA-ViT-g(pixels))`` (N, 1 + patches, vit_width)."""
        with self.autocast(pixels.device):
            pixels = pixels.to(self.visual_encoder.patch_embed.proj.weight.dtype)
            return self.ln_vision(self.visual_encoder.forward_features(pixels))

    def encode_image_embeds(self, image_embeds: torch.Tensor, input_ids: torch.Tensor,
                            attention_mask: torch.Tensor, batch_size: int) -> torch.Tensor:
        """TimeChat ``encode_videoQformer_visual`` after ``ln_vision``, up to (excluding) ``llama_proj``.

        image_embeds: (B*T, N, vit_width), frame-major per clip; input_ids / attention_mask: (B*T, L)
        timestamp tokens of each frame. Returns (B, W * Qv, Hv): the windows' video Q-Former outputs.
        """
        cfg = self.cfg
        bt = image_embeds.shape[0]
        t = bt // batch_size
        if t * batch_size != bt or input_ids.shape[0] != bt or attention_mask.shape != input_ids.shape:
            raise ValueError(f"{bt} image embeddings, {tuple(input_ids.shape)} ids and "
                             f"{tuple(attention_mask.shape)} mask do not make {batch_size} clips")
        if t > cfg.max_frame_pos:
            raise ValueError(f"{t} frames exceed the frame position embedding ({cfg.max_frame_pos})")
        device = image_embeds.device
        with self.autocast(device):
            queries = self.query_tokens.expand(bt, -1, -1)  # (B*T, Q, H)
            mask = None  # no padded timestamp (e.g. 0.0 .. 9.8 s all tokenise alike): same as all ones
            if attention_mask.device.type == "meta" or not attention_mask.all():
                query_mask = torch.ones(queries.shape[:2], dtype=attention_mask.dtype, device=device)
                mask = torch.cat([query_mask, attention_mask.to(device)], dim=1)  # (B*T, Q + L)
            frame_tokens = self.frame_qformer(
                input_ids=input_ids.to(device),
                attention_mask=mask,
                query_embeds=queries,
                encoder_hidden_states=image_embeds,  # every image token attended
            ).last_hidden_state  # (B*T, Q + L, H): query outputs then text outputs, all kept
            frame_tokens = frame_tokens.reshape(batch_size, t, -1, cfg.qformer_hidden)  # (B, T, Q+L, H)
            positions = self.frame_position_embedding(torch.arange(t, device=device))  # (T, H): frame order
            frame_tokens = frame_tokens + positions[None, :, None, :]

            video_queries = self.video_query_tokens.expand(batch_size, -1, -1)  # (B, Qv, Hv)
            windows = []
            for start, end in cfg.window_spans(t):
                memory = frame_tokens[:, start:end].reshape(batch_size, -1, cfg.qformer_hidden)  # (B, w*(Q+L), H)
                # no encoder mask = TimeChat's all-ones clip_atts: padded text positions are attended too
                out = self.video_qformer(query_embeds=video_queries, encoder_hidden_states=memory)
                windows.append(out.last_hidden_state)  # (B, Qv, Hv)
        return torch.cat(windows, dim=1)  # (B, W*Qv, Hv)

    def forward(self, frames: torch.Tensor, fps: float) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = frames.shape[:2]
        image_embeds = self.encode_images(frames.reshape(b * t, *frames.shape[2:]))  # (B*T, N, vit_width)
        input_ids, attention_mask = self.timestamp_tokens(t, fps)  # (T, L): the same sentences for every clip
        tokens = self.encode_image_embeds(image_embeds, input_ids.repeat(b, 1), attention_mask.repeat(b, 1), b)
        spans = torch.tensor(self.cfg.window_spans(t), dtype=torch.long, device="cpu")  # indices: always on CPU
        return tokens, spans

    def encode(self, frames_uint8: torch.Tensor, clip: ClipConfig) -> torch.Tensor:
        """The encoder contract (``extractors.encoders``): (B, T, H, W, 3) uint8 -> (B, W*Q, hidden) float32;
        the timestamps come from ``clip.fps``."""
        return self(self.preprocess(frames_uint8), fps=clip.fps)[0].float()


# --------------------------------------------------------------------------- checkpoints

# Original keys the converter drops on purpose (everything else must land in ``TimeChatVisual``):
# the LLM side (``llama_proj`` maps the 768-wide tokens to LLaMA's 4096; we keep the tokens before
# it), the LLM itself and LoRA, InstructBLIP's own LLM projection, the Q-Former LM heads (None in
# TimeChat) and BERT's ``position_ids`` buffer (non-persistent in transformers: always arange).
TIMECHAT_DROPPED_PREFIXES = ("llama_proj.", "llama_model.", "llm_proj.", "llm_model.", "t5_proj.", "t5_model.",
                             "Qformer.cls.", "video_Qformer.cls.")
TIMECHAT_DROPPED_KEYS = ("Qformer.bert.embeddings.position_ids", "video_Qformer.bert.embeddings.position_ids")
# EVA-CLIP-g file keys that LAVIS' non-strict load ignores (no final norm or head in BLIP-2's ViT).
EVA_DROPPED_PREFIXES = ("norm.", "fc_norm.", "head.", "lm_head.", "rel_pos_bias.")


def _rename_bert(key: str, embeddings_layernorm: str) -> str:
    """LAVIS BERT Q-Former key (after ``bert.``) -> transformers Q-Former key."""
    key = key.replace("embeddings.LayerNorm.", embeddings_layernorm)
    key = key.replace(".attention.self.", ".attention.attention.")
    return key.replace(".crossattention.self.", ".crossattention.attention.")


def timechat_key_map(key: str, source: str = "lavis") -> str | None:
    """One original key -> its ``TimeChatVisual`` key, or None for a key dropped on purpose.

    ``source="eva"``: a raw ``eva_vit_g.pth`` key -> ``visual_encoder.<key>`` (final norm / head dropped).
    ``source="lavis"``: an InstructBLIP / TimeChat ``['model']`` key: ``Qformer.bert.*`` ->
    ``frame_qformer.*``, ``video_Qformer.bert.*`` -> ``video_qformer.*`` (``embeddings.LayerNorm`` ->
    ``layernorm``), ``attention.self`` -> ``attention.attention``, ``video_frame_position_embedding``
    -> ``frame_position_embedding``; ``ln_vision``, ``query_tokens`` and ``video_query_tokens`` keep
    their names. Unknown keys pass through unchanged, so the strict key check names them.
    """
    if source == "eva":
        return None if key.startswith(EVA_DROPPED_PREFIXES) else f"visual_encoder.{key}"
    if source != "lavis":
        raise ValueError(f"source must be 'eva' or 'lavis', not {source!r}")
    if key in TIMECHAT_DROPPED_KEYS or key.startswith(TIMECHAT_DROPPED_PREFIXES):
        return None
    if key.startswith("Qformer.bert."):
        return "frame_qformer." + _rename_bert(key[len("Qformer.bert."):], "embeddings.layernorm.")
    if key.startswith("video_Qformer.bert."):
        return "video_qformer." + _rename_bert(key[len("video_Qformer.bert."):], "layernorm.")
    if key == "video_frame_position_embedding.weight":
        return "frame_position_embedding.weight"
    return key


def convert_timechat_state_dict(state_dict: dict, source: str = "lavis") -> dict:
    """Rename one released state dict to ``TimeChatVisual`` keys (``timechat_key_map``; no completeness check).

    Unwraps ``{"model": ...}``. The completeness check happens when the merged files are loaded
    (``merge_timechat_checkpoints`` / ``load_timechat_weights``).
    """
    if "model" in state_dict and isinstance(state_dict["model"], dict):
        state_dict = state_dict["model"]
    out = {}
    for key, value in state_dict.items():
        new = timechat_key_map(key, source)
        if new is not None:
            out[new] = value
    return out


TIMECHAT_LAYOUT = "TimeChat's released files for this config"  # what a mismatch says they are not


def merge_timechat_checkpoints(raw: dict[str, dict], cfg: TimeChatConfig = TimeChatConfig(),
                               origin: str = "state dicts") -> dict:
    """The three released state dicts (keyed by file name, see ``TIMECHAT_FILES``) -> one checked
    ``TimeChatVisual`` state dict, merged in TimeChat's order (later files override earlier keys).

    As LAVIS / TimeChat: ViT blocks beyond ``vit_depth`` are ignored (EVA-CLIP-g has 40, BLIP-2 uses 39),
    and a frame position table of another length is resized with ``F.interpolate(mode="nearest")``.
    Missing / unexpected keys and wrong shapes are a one-line ``StateDictMismatchError`` naming
    ``origin`` and the first of them.
    """
    merged = {}
    for name in TIMECHAT_FILES:
        merged.update(convert_timechat_state_dict(raw[name], "eva" if name == "eva_vit_g.pth" else "lavis"))
    merged = {k: v for k, v in merged.items()
              if not (k.startswith("visual_encoder.blocks.") and int(k.split(".")[2]) >= cfg.vit_depth)}
    key = "frame_position_embedding.weight"
    if key in merged and merged[key].shape[0] != cfg.max_frame_pos:  # TimeChat's interpolate_frame_pos_embed
        merged[key] = F.interpolate(merged[key].T[None].float(), size=cfg.max_frame_pos, mode="nearest")[0].T
    with torch.device("meta"):  # the config's keys and shapes, no memory
        reference = TimeChatVisual(replace(cfg, precision="fp32"))
    check_keys(reference.state_dict(), merged, origin, TIMECHAT_LAYOUT)
    return merged


RELEASED_FILES = tuple(TIMECHAT_FILES)  # and the BERT tokenizer folder named by cfg.tokenizer


def load_released(model: TimeChatVisual, weights_dir: str) -> None:
    """The three released files from ``weights_dir`` in TimeChat's order, strictly checked, and the
    BERT tokenizer from ``weights_dir/<cfg.tokenizer>`` (offline; its folder is checked first, before
    gigabytes of checkpoints are read)."""
    name, tokenizer_dir = model.cfg.tokenizer, None
    if name != BUILTIN_TOKENIZER:
        tokenizer_dir = name if os.path.isabs(name) else os.path.join(weights_dir, name)
        if not os.path.isdir(tokenizer_dir):
            raise FileNotFoundError(f"BERT tokenizer folder not found: {tokenizer_dir} (save the Hugging Face "
                                    f"'bert-base-uncased' tokenizer there with tokenizer.save_pretrained)")
    raw = {}
    for file, source in TIMECHAT_FILES.items():
        path = os.path.join(weights_dir, file)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"TimeChat checkpoint not found: {path} (download {file} from {source})")
        raw[file] = read_checkpoint(path)
    origin = os.path.join(weights_dir, "{" + ", ".join(TIMECHAT_FILES) + "}")
    load_strict(model, merge_timechat_checkpoints(raw, model.cfg, origin), origin, TIMECHAT_LAYOUT)
    if tokenizer_dir is not None:
        model._tokenizer = build_tokenizer(tokenizer_dir)


register_encoder(TimeChatConfig, TimeChatVisual, RELEASED_FILES, load_released)
