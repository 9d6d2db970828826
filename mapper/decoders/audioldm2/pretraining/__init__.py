"""Pretraining the `toy` AudioLDM-2 on toy-world audio, stage by stage as AudioLDM-2 was trained.

    corpus   toy-world sound tracks -> log-mels, waveforms, tiny-AudioMAE tokens, labels
    vae      the mel VAE (reconstruction + KL), then its latent scale (scale_by_std)
    vocoder  HiFi-GAN from mel to waveform (multi-resolution STFT + mel losses)
    unet     latent diffusion conditioned on the AudioMAE tokens of the same audio and on the label,
             with condition dropout for classifier-free guidance

``recipes.pretrain_toy_decoder`` runs the stages and writes the diffusers folder that
``load_audioldm2("toy")`` reads.
"""
