"""Style transfer through the newer DiT families: Qwen-Image, Z-Image Turbo, Flux.2 dev."""

from __future__ import annotations

from headless.testbed.standins.names import (
    FLUX2_TEXT_ENCODER,
    FLUX2_UNET,
    FLUX2_VAE,
    FLUX_VAE,
    LIGHTTAEW2_1,
    QWEN_IMAGE_TEXT_ENCODER,
    QWEN_IMAGE_UNET,
    QWEN_IMAGE_VAE,
    Z_IMAGE_TEXT_ENCODER,
    Z_IMAGE_UNET,
)
from headless.workflow import UIGraph

from .common import (
    CONTENT_IMAGE,
    FAMILY_MODELS_NOTE,
    LOSS_TIPS,
    OPEN_CLIP_FILE,
    PROMPT,
    STYLE_IMAGE,
    VGG_FILE,
    all_losses,
    finish,
    scaled_content,
    standard_layout,
)

QWEN_HF = "Comfy-Org/Qwen-Image_ComfyUI, split_files"
# As ComfyUI's own Qwen-Image template (image_qwen_image.json): 1328 px, ModelSamplingAuraFlow 3.1,
# 20 steps at cfg 2.5, euler + simple.
QWEN_SIZE, QWEN_SHIFT = 1328, 3.1

QWEN_INTRO = f"""# Style transfer, Qwen-Image at {QWEN_SIZE} px
Qwen-Image is a 20B flow-matching transformer (MMDiT) whose latents are Wan 2.1's: 16 channels in a
5-D tensor with one frame, which guidance handles like any picture. Its text encoder is Qwen2.5-VL 7B.
Guidance decodes with `lighttaew2_1` (Wan 2.1's tiny autoencoder, from `models/vae_approx`) in *x0*
mode during the first 70% of the steps, with the losses scored at 384 px; the Qwen-Image VAE encodes
the content and decodes the result.

**Qwen-Image defaults**: decoder `lighttaew2_1` (the Qwen-Image VAE works too, slower; another
family's decoder such as `taef1` is refused by name), loss_resolution 384, window 0-0.7, scale 0.3,
denoise 0.75; sampling as ComfyUI's Qwen-Image template: ModelSamplingAuraFlow shift {QWEN_SHIFT}, 20 steps,
cfg 2.5 (Qwen-Image is not guidance-distilled: the negative prompt is used), euler + simple. *xt* mode
works but needs the memory of a backward pass through the 20B transformer: use x0. Memory: see
docs/families.md.
"""


def style_transfer_qwen_image(g: UIGraph) -> None:
    note = g.note(QWEN_INTRO + FAMILY_MODELS_NOTE.format(models=(
        f"- `models/diffusion_models/{QWEN_IMAGE_UNET}` ({QWEN_HF}/diffusion_models)\n"
        f"- `models/text_encoders/{QWEN_IMAGE_TEXT_ENCODER}` ({QWEN_HF}/text_encoders)\n"
        f"- `models/vae/{QWEN_IMAGE_VAE}` ({QWEN_HF}/vae)\n"
        f"- `models/vae_approx/{LIGHTTAEW2_1}` (lightx2v/Autoencoders; VAELoader lists it as is)\n"))
        + LOSS_TIPS, 0, height=560)
    n = {}
    unet = g.add("UNETLoader", 0, unet_name=QWEN_IMAGE_UNET, weight_dtype="default")
    clip = g.add("CLIPLoader", 0, clip_name=QWEN_IMAGE_TEXT_ENCODER, type="qwen_image", device="default")
    n["clip"] = clip[0]
    n["content"] = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    n["style"] = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    n["vgg"] = g.add("StyleGuidanceVGGLoader", 0, vgg_name=VGG_FILE)
    n["oclip"] = g.add("StyleGuidanceOpenCLIPLoader", 0, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    model = g.add("ModelSamplingAuraFlow", 1, model=unet[0], shift=QWEN_SHIFT)
    vae = g.add("VAELoader", 1, title="Qwen-Image VAE", vae_name=QWEN_IMAGE_VAE)
    tae = g.add("VAELoader", 1, title="Guidance decoder (lighttaew2_1)", vae_name=LIGHTTAEW2_1)
    pos = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=n["clip"])
    neg = g.add("CLIPTextEncode", 1, title="Negative prompt", text="", clip=n["clip"])
    scaled_content(g, n, QWEN_SIZE)
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=vae[0])
    losses = all_losses(g, n)
    sampler = g.add("StyleGuidanceSampler", 3, title="Guided sampler", model=model[0], positive=pos[0], negative=neg[0],
                    latent_image=encode[0], vae=tae[0], losses=losses, seed=42, steps=20, cfg=2.5, sampler_name="euler",
                    scheduler="simple", denoise=0.75, mode="x0", scale=0.3, start_percent=0.0, end_percent=0.7,
                    loss_resolution=384)
    out = finish(g, sampler[0], vae[0], losses, "qwen_image")
    standard_layout(g, note, n, [[unet, clip, vae, tae], [model, pos, neg, encode]], [sampler], out)


ZIMAGE_HF = "Comfy-Org/z_image_turbo, split_files"
# As ComfyUI's own Z-Image Turbo template (image_z_image_turbo.json): 1024 px, ModelSamplingAuraFlow 3,
# cfg 1 (distilled), res_multistep + simple. 8 steps, guided over the whole schedule:
# benchmarks/results/cpu_few_step_z_image*.md.
ZIMAGE_SIZE, ZIMAGE_SHIFT, ZIMAGE_STEPS = 1024, 3.0, 8

ZIMAGE_INTRO = f"""# Style transfer, Z-Image Turbo at {ZIMAGE_SIZE} px
Z-Image Turbo is a 6B flow-matching transformer (Lumina 2's NextDiT design) distilled to a few steps
at cfg 1; its text encoder is Qwen3 4B and its latents are Flux's, so guidance decodes with `taef1`
(Flux's tiny decoder) in *x0* mode with the losses scored at 384 px; the Flux VAE (`ae`) encodes
the content and decodes the result.

**Z-Image Turbo defaults**: decoder `taef1` (the Flux VAE works too, slower; `taesd3` has the same 16
channels but another scaling and is refused by name), loss_resolution 384, scale 0.3, denoise 0.75,
**window 0-1**: a few-step model gives guidance few evaluations, and with {ZIMAGE_STEPS} steps the usual
window 0-0.7 guides only 6 of them; over the whole schedule all {ZIMAGE_STEPS} are guided (on the
stand-ins at 8 steps, twin-scored guided/plain total 0.50 against 0.88 for 0-0.7 with res_multistep,
0.51 against 0.75 with euler; at 4 steps alike: benchmarks/bench_few_step.py). Sampling as ComfyUI's
Z-Image Turbo template: ModelSamplingAuraFlow shift {ZIMAGE_SHIFT:g}, cfg 1 (the negative is the
positive zeroed, as there: unused at cfg 1), res_multistep + simple; {ZIMAGE_STEPS} steps, the model's
own recommendation (the template in comfyui-workflow-templates 0.7.67 runs 4: that works too, keep
the window 0-1). *xt* needs the memory of a backward pass through the 6B transformer: use x0. Memory:
see docs/families.md.
"""


def style_transfer_z_image_turbo(g: UIGraph) -> None:
    note = g.note(ZIMAGE_INTRO + FAMILY_MODELS_NOTE.format(models=(
        f"- `models/diffusion_models/{Z_IMAGE_UNET}` ({ZIMAGE_HF}/diffusion_models)\n"
        f"- `models/text_encoders/{Z_IMAGE_TEXT_ENCODER}` ({ZIMAGE_HF}/text_encoders; CLIPLoader type lumina2)\n"
        f"- `models/vae/{FLUX_VAE}` ({ZIMAGE_HF}/vae: the Flux VAE)\n"
        "- `models/vae_approx/taef1_encoder.safetensors` and `taef1_decoder.safetensors` (madebyollin/taef1)\n"))
        + LOSS_TIPS, 0, height=560)
    n = {}
    unet = g.add("UNETLoader", 0, unet_name=Z_IMAGE_UNET, weight_dtype="default")
    clip = g.add("CLIPLoader", 0, clip_name=Z_IMAGE_TEXT_ENCODER, type="lumina2", device="default")
    n["clip"] = clip[0]
    n["content"] = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    n["style"] = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    n["vgg"] = g.add("StyleGuidanceVGGLoader", 0, vgg_name=VGG_FILE)
    n["oclip"] = g.add("StyleGuidanceOpenCLIPLoader", 0, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    model = g.add("ModelSamplingAuraFlow", 1, model=unet[0], shift=ZIMAGE_SHIFT)
    vae = g.add("VAELoader", 1, title="Flux VAE (ae)", vae_name=FLUX_VAE)
    taef1 = g.add("VAELoader", 1, title="Guidance decoder (TAEF1)", vae_name="taef1")
    pos = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=n["clip"])
    neg = g.add("ConditioningZeroOut", 1, title="Negative (zeroed; unused at cfg 1)", conditioning=pos[0])
    scaled_content(g, n, ZIMAGE_SIZE)
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=vae[0])
    losses = all_losses(g, n)
    sampler = g.add("StyleGuidanceSampler", 3, title="Guided sampler", model=model[0], positive=pos[0],
                    negative=neg[0], latent_image=encode[0], vae=taef1[0], losses=losses, seed=42, steps=ZIMAGE_STEPS,
                    cfg=1.0, sampler_name="res_multistep", scheduler="simple", denoise=0.75, mode="x0", scale=0.3,
                    start_percent=0.0, end_percent=1.0, loss_resolution=384)
    out = finish(g, sampler[0], vae[0], losses, "z_image_turbo")
    standard_layout(g, note, n, [[unet, clip, vae, taef1], [model, pos, neg, encode]], [sampler], out)


FLUX2_HF = "Comfy-Org/flux2-dev, split_files"
# As ComfyUI's own Flux.2 templates (image_flux2_text_to_image.json, image_flux2.json): FluxGuidance 4,
# cfg 1 (BasicGuider), euler, Flux2Scheduler 20 steps at the picture's size.
FLUX2_SIZE, FLUX2_GUIDANCE, FLUX2_STEPS = 1024, 4.0, 20

FLUX2_INTRO = f"""# Style transfer, Flux.2 dev at {FLUX2_SIZE} px
Flux.2 dev is a 32B guidance-distilled flow transformer; its text encoder is Mistral 3 Small 24B and
its VAE packs 32 latent channels 2x2 into 128. **No tiny decoder exists for Flux.2** (ComfyUI 0.3.75 and
0.8.0 list none), so guidance decodes through the full Flux.2 VAE, which also encodes the content and
decodes the result: each guided step pays a full-size VAE decode and its backward (a KL decoder of SD's
size: about 7.5 TFLOPs at 512 px and 31 at 1024 px, against TAEF1's 0.42 at 512; docs/families.md). To pay
less, guide fewer steps (a narrower window) or generate smaller: *loss_resolution* shrinks only the loss
networks' share, the decoder runs at the picture's size.

**Flux.2 defaults**: decoder the Flux.2 VAE, loss_resolution 384, window 0-0.7, scale 0.3, x0, denoise
0.75 (SplitSigmasDenoise keeps the last 75% of the schedule); sampling as ComfyUI's Flux.2 template: the
Guider at cfg 1 (the negative is the positive zeroed, unused at cfg 1; the template's BasicGuider has
none), FluxGuidance {FLUX2_GUIDANCE:g}, euler, Flux2Scheduler {FLUX2_STEPS} steps at the picture's size,
SamplerCustomAdvanced. *xt* needs a backward pass through the 32B transformer: use x0.

**Flux.2 Klein** (4B / 9B, distilled to 4 steps at cfg 1) uses other files: its own diffusion model and a
Qwen3 text encoder (`qwen_3_4b.safetensors` for 4B, Qwen3 8B for 9B) in place of Mistral; the VAE is the
same `{FLUX2_VAE}`. ComfyUI 0.3.75 and 0.8.0 do not load Klein yet; with a ComfyUI that does, swap those two
files, set 4 steps and guide the whole schedule (window 0-1, see the Z-Image Turbo workflow). Memory: see
docs/families.md.
"""


def style_transfer_flux2(g: UIGraph) -> None:
    note = g.note(FLUX2_INTRO + FAMILY_MODELS_NOTE.format(models=(
        f"- `models/diffusion_models/{FLUX2_UNET}` ({FLUX2_HF}/diffusion_models)\n"
        f"- `models/text_encoders/{FLUX2_TEXT_ENCODER}` ({FLUX2_HF}/text_encoders; CLIPLoader type flux2)\n"
        f"- `models/vae/{FLUX2_VAE}` ({FLUX2_HF}/vae)\n"))
        + LOSS_TIPS, 0, height=560)
    n = {}
    unet = g.add("UNETLoader", 0, unet_name=FLUX2_UNET, weight_dtype="default")
    clip = g.add("CLIPLoader", 0, clip_name=FLUX2_TEXT_ENCODER, type="flux2", device="default")
    n["clip"] = clip[0]
    n["content"] = g.add("LoadImage", 0, title="Content image", image=CONTENT_IMAGE)
    n["style"] = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    n["vgg"] = g.add("StyleGuidanceVGGLoader", 0, vgg_name=VGG_FILE)
    n["oclip"] = g.add("StyleGuidanceOpenCLIPLoader", 0, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    vae = g.add("VAELoader", 1, title="Flux.2 VAE (also the guidance decoder)", vae_name=FLUX2_VAE)
    text = g.add("CLIPTextEncode", 1, title="Positive prompt", text=PROMPT, clip=n["clip"])
    pos = g.add("FluxGuidance", 1, conditioning=text[0], guidance=FLUX2_GUIDANCE)
    neg = g.add("ConditioningZeroOut", 1, title="Negative (zeroed; unused at cfg 1)", conditioning=text[0])
    scaled_content(g, n, FLUX2_SIZE)
    encode = g.add("VAEEncode", 1, title="Content latent (the start)", pixels=n["scaled"][0], vae=vae[0])
    losses = all_losses(g, n)
    sigmas = g.add("Flux2Scheduler", 3, steps=FLUX2_STEPS, width=FLUX2_SIZE, height=FLUX2_SIZE)
    low = g.add("SplitSigmasDenoise", 3, title="Denoise 0.75 (the last 75% of the schedule)", sigmas=sigmas[0],
                denoise=0.75)
    noise = g.add("RandomNoise", 3, noise_seed=42)
    select = g.add("KSamplerSelect", 3, sampler_name="euler")
    guider = g.add("StyleGuidanceGuider", 3, model=unet[0], positive=pos[0], negative=neg[0],
                   cfg=1.0, vae=vae[0], losses=losses, mode="x0", scale=0.3, start_percent=0.0, end_percent=0.7,
                   loss_resolution=384)
    custom = g.add("SamplerCustomAdvanced", 3, noise=noise[0], guider=guider[0], sampler=select[0], sigmas=low[1],
                   latent_image=encode[0])
    out = finish(g, custom[0], vae[0], losses, "flux2")
    # the sampler choice sits under the guider, the sampler on top: the model band stays short enough
    # for the loss band under it to end inside a legible fit-to-view, and the latent's link stays above it
    standard_layout(g, note, n, [[unet, clip, vae], [text, pos, neg, encode], [noise, sigmas, low]],
                    [custom, guider, select], out)
