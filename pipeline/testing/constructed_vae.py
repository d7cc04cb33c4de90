"""A hand-constructed, deterministic near-identity VAE for the tiny models.

A random-weight VAE ignores its input (its posterior noise is about five times its
signal), so img2img on it cannot follow a video: the demo showed colour noise and the
coherence benchmark had nothing to measure. :func:`constructed_vae` builds the same
diffusers ``AutoencoderKL`` (so the real loading, tiling, dtype and pipeline code is
exercised) with weights set by hand so that it encodes an image to its 8x8 block averages
and decodes them back with bilinear upsampling. No training, no randomness: img2img on the
tiny models now correlates with its input (r = 0.88 at strength 0.3, against about 0 with
the random VAE) while the UNet stays random.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import AutoencoderKL

# Rec. 601 luma weights: the fourth latent channel is the luminance.
LUMA = (0.299, 0.587, 0.114)

# The operating point of the final SiLUs: there SiLU(c + s) - SiLU(c - s) = 2 SiLU'(c) s
# to within 1e-5 for |s| <= 1 (the odd part of SiLU's curvature is ~e^-c).
_OPERATING_POINT = 12.0
# Encoder: the constant that pins the final GroupNorm's scale rides in channels of its
# own, so it costs no precision; the larger, the smaller the data-dependent gain error.
_ENCODER_CONSTANT = 100.0
# The scaled latents the UNet sees are this times (R, G, B, Y) pooled, with R, G, B in
# [-1, 1]: 2.5 makes them ~unit std for ordinary images (pixel std ~0.4), as SD's
# scaling factor does for its latents (at 0.91 they were 0.35 std and the tiny UNet's
# noise swamped them).
_SCALED_GAIN = 2.5
# Decoder: the constant shares channels with the colour signals (K + s, K - s), so in
# half precision s is resolved to ulp(K) only; 8 keeps the data-dependent gain error
# below 0.3% (< 1/255 at full swing) while fp16 stays within ~1/255 (at 100, bf16 keeps
# only 22.6 dB).
_DECODER_CONSTANT = 8.0


def vae_config(scaling_factor: float) -> dict:
    """The tiny VAE architecture (the project's, with 2 norm groups instead of 4)."""
    return dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def _silu_slope(x: float) -> float:
    sig = 1.0 / (1.0 + torch.exp(torch.tensor(-x, dtype=torch.float64)).item())
    return sig + x * sig * (1.0 - sig)


def constructed_vae(
    scaling_factor: float,
    *,
    latent_gain: float | None = None,
    encoder_constant: float = _ENCODER_CONSTANT,
    decoder_constant: float = _DECODER_CONSTANT,
) -> AutoencoderKL:
    """An ``AutoencoderKL`` that is (almost exactly) a linear pooling autoencoder.

    Encode: image ``x`` in [-1, 1] -> posterior mean ``g * (R, G, B, Y)`` averaged over
    each 8x8 block (``Y`` the Rec. 601 luma), posterior std ``exp(-15)`` ~ 3e-7, so a
    sample is the mean. ``g = latent_gain`` defaults to ``2.5 / scaling_factor``
    (13.7 for SD 1.x's 0.18215, 19.2 for SDXL's 0.13025), so the *scaled* latents the
    UNet sees are ``2.5 * (R, G, B, Y)`` for SD 1.x and SDXL alike: ~unit std for an
    image whose pixels have std 0.4 in [-1, 1], like a real SD VAE's scaled latents.
    Decode: latents -> ``(R, G, B)`` upsampled by three nearest-2x + [1,2,1]x[1,2,1]/16
    stages, which is exactly bilinear 2x upsampling away from the border (the outermost
    pixel of each stage is darkened toward grey by the conv's zero padding).

    How the weights do it (every parameter is set; the construction starts from zeros):

    * **Resnets are their shortcut.** Every ``ResnetBlock2D`` has ``conv2`` weight 0, so
      its branch adds only ``conv2.bias`` (0, except the decoder's last block, below).
      Where channels change, the 1x1 ``conv_shortcut`` copies channel ``i`` to ``i``.
      The mid-block attentions have ``to_q/k/v/out`` 0: identity through their residual.
    * **Downsampling is average pooling.** Each ``Downsample2D`` (3x3 stride-2 conv after
      a (0,1,0,1) zero pad) weighs its top-left 2x2 taps 0.25 per channel; those taps
      never reach the pad for even sizes. **Upsampling is bilinear:** nearest 2x, then a
      per-channel ``outer([1,2,1],[1,2,1])/16`` conv (sums to 1).
    * **The only non-linear parts that cannot be bypassed are the final GroupNorm +
      SiLU of the encoder and of the decoder.** They are made linear:

      - Every signal ``s`` travels as a pair ``(+s, -s)`` (encoder) or ``(K+s, K-s)`` /
        ``(-K+s, -K-s)`` (decoder) in one norm group, together with a large constant
        ``+-K`` balanced so that the group mean is exactly 0 at every pixel. The group
        variance is then ``K^2 + mean(s^2)`` (up to a fixed factor), i.e. data-independent
        to a relative ``mean(s^2) / K^2``, and the norm divides by a known constant.
      - The per-channel affine (``gamma``, ``beta``) maps every channel to ``c + s`` or
        ``c - s`` with ``c = 12``, where SiLU is a straight line of slope SiLU'(12) up to
        ~e^-12; the next conv takes ``(SiLU(c + s) - SiLU(c - s)) / (2 SiLU'(c)) = s``,
        which also cancels SiLU's even-order curvature (error < 1e-5 for |s| <= 1).
      - Encoder (8 channels at full resolution, 16 after ``down_blocks.2``): channels 0-7
        are ``(R, -R, G, -G, B, -B, +K, -K)`` from ``conv_in`` (K from its bias, 100),
        8-15 are 0; the final norm's first group (channels 0-7) thus has mean 0 and
        variance ``(K^2 + R^2 + G^2 + B^2) / 4``. K has channels of its own here, so its
        size costs no precision.
      - Decoder (16 channels, 8 after ``up_blocks.2``): ``conv_in`` writes
        ``(R, -R, G, -G, B, -B, 0, 0)`` from the latents (divided by the gain); the
        constant is added only by the last resnet's ``conv2.bias`` (after the last
        upsampling, whose zero padding would otherwise shrink it at the border) as
        ``(K, K, -K, -K, K, K, -K, -K)``, giving the norm groups
        ``(K+R, K-R, -K+G, -K-G)`` and ``(K+B, K-B, -K, -K)``. Here K shares channels
        with the signals; K = 8 bounds the gain error to ~0.3% (under 1/255) and keeps
        fp16 precision near 1/255 (bf16 resolves only ~1/32).
    * ``quant_conv`` / ``post_quant_conv`` are identities; the encoder's log-variance
      channels have weight 0 and bias -30 (diffusers' lower clamp).

    Deterministic, builds in milliseconds, and round-trips through
    ``save_pretrained`` / ``from_pretrained``.
    """
    from diffusers import AutoencoderKL

    vae: Any = AutoencoderKL(**vae_config(scaling_factor))  # its parts are run-time attributes
    gain = float(latent_gain) if latent_gain is not None else _SCALED_GAIN / float(scaling_factor)
    c = _OPERATING_POINT
    slope = _silu_slope(c)
    ke, kd = float(encoder_constant), float(decoder_constant)

    with torch.no_grad():
        for tensor in vae.state_dict(keep_vars=True).values():
            tensor.zero_()
        # GroupNorms not on the signal path: plain (weight 1, bias 0); their outputs only
        # feed zeroed convs.
        for module in vae.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.fill_(1.0)
        enc, dec = vae.encoder, vae.decoder

        # identity shortcuts where channels change
        for block in list(enc.down_blocks) + list(dec.up_blocks):
            for resnet in block.resnets:
                if resnet.conv_shortcut is not None:
                    w = resnet.conv_shortcut.weight
                    for i in range(min(w.shape[0], w.shape[1])):
                        w[i, i, 0, 0] = 1.0
        # average pooling
        for block in enc.down_blocks:
            for down in block.downsamplers or []:
                w = down.conv.weight
                for i in range(w.shape[0]):
                    w[i, i, :2, :2] = 0.25
        # bilinear upsampling (after diffusers' nearest 2x)
        smooth = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])) / 16.0
        for block in dec.up_blocks:
            for up in block.upsamplers or []:
                w = up.conv.weight
                for i in range(w.shape[0]):
                    w[i, i] = smooth

        # --- encoder: (R, -R, G, -G, B, -B, +K, -K) ---
        w = enc.conv_in.weight
        for colour in range(3):
            w[2 * colour, colour, 1, 1] = 1.0
            w[2 * colour + 1, colour, 1, 1] = -1.0
        enc.conv_in.bias[6] = ke
        enc.conv_in.bias[7] = -ke
        # final norm: group 0 = channels 0-7, variance (K^2 + R^2 + G^2 + B^2) / 4
        sigma = ke / 2.0
        enc.conv_norm_out.weight.zero_()
        enc.conv_norm_out.weight[:6] = sigma
        enc.conv_norm_out.bias.zero_()
        enc.conv_norm_out.bias[:6] = c
        w = enc.conv_out.weight  # 8 x 16: means (R, G, B, Y), then log-variances
        for colour in range(3):
            w[colour, 2 * colour, 1, 1] = gain / (2.0 * slope)
            w[colour, 2 * colour + 1, 1, 1] = -gain / (2.0 * slope)
            w[3, 2 * colour, 1, 1] = LUMA[colour] * gain / (2.0 * slope)
            w[3, 2 * colour + 1, 1, 1] = -LUMA[colour] * gain / (2.0 * slope)
        enc.conv_out.bias[4:] = -30.0

        eye = torch.eye(vae.quant_conv.weight.shape[0])
        vae.quant_conv.weight.copy_(eye[:, :, None, None])
        eye = torch.eye(vae.post_quant_conv.weight.shape[0])
        vae.post_quant_conv.weight.copy_(eye[:, :, None, None])

        # --- decoder: (R, -R, G, -G, B, -B, 0, 0), then + (K, K, -K, -K, K, K, -K, -K) ---
        w = dec.conv_in.weight  # 16 x 4
        for colour in range(3):
            w[2 * colour, colour, 1, 1] = 1.0 / gain
            w[2 * colour + 1, colour, 1, 1] = -1.0 / gain
        signs = torch.tensor([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0])
        dec.up_blocks[-1].resnets[-1].conv2.bias.copy_(kd * signs)
        # groups (K+R, K-R, -K+G, -K-G), (K+B, K-B, -K, -K): std ~ K
        dec.conv_norm_out.weight.fill_(kd)
        dec.conv_norm_out.bias.copy_(c - kd * signs)
        w = dec.conv_out.weight  # 3 x 8
        for colour in range(3):
            w[colour, 2 * colour, 1, 1] = 1.0 / (2.0 * slope)
            w[colour, 2 * colour + 1, 1, 1] = -1.0 / (2.0 * slope)
    vae.eval()
    return vae
