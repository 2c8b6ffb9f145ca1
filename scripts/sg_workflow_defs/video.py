"""Video to video: Wan 2.1 T2V 1.3B restyling a clip, frame by frame, with a temporal term against flicker."""

from __future__ import annotations

from headless.testbed.standins.names import LIGHTTAEW2_1, WAN21_TEXT_ENCODER, WAN21_UNET, WAN21_VAE
from headless.workflow import UIGraph

from .common import LOSS_TIPS, OPEN_CLIP_FILE, SHIPPED_WEIGHTS, STYLE_IMAGE, VGG_FILE
from .layout import arrange, reroute

CONTENT_CLIP = "style_guidance_content_clip.mp4"
WAN_HF = "Comfy-Org/Wan_2.1_ComfyUI_repackaged, split_files"
# As ComfyUI's own Wan 2.1 text-to-video template (text_to_video_wan.json): 832 x 480, ModelSamplingSD3
# shift 8, 30 steps at cfg 6, uni_pc + simple, CreateVideo at 16 fps, SaveVideo.
WAN_WIDTH, WAN_HEIGHT, WAN_SHIFT, WAN_STEPS, WAN_CFG = 832, 480, 8.0, 30, 6.0
# The content frames kept: 1 + 4 (T - 1) with T = 5 latent frames (the Wan VAE's frame rule); the shipped
# clip has exactly this many.
WAN_FRAMES = 17
WAN_FPS = 16.0  # Wan 2.1's own frame rate, and the sample clip's
WAN_NEGATIVE = "blurry, low quality, static, overexposed, jpeg artifacts, deformed, flickering"

WAN_INTRO = f"""# Video style transfer, Wan 2.1 T2V 1.3B at {WAN_WIDTH} x {WAN_HEIGHT}
A content video is restyled by Wan 2.1 (a 1.3B flow-matching video transformer): its frames are
encoded by the Wan 2.1 VAE as the start latent (denoise 0.7), and each guided step decodes every
frame with `lighttaew2_1` (Wan 2.1's tiny autoencoder) and scores them as one batch: the content
terms compare output frame f with content frame f, the style picture is compared with every frame,
and *Temporal Consistency* keeps each frame-to-frame change close to the content video's (less flicker).

**Frame count**: the Wan VAE turns T latent frames into 1 + 4 (T - 1) video frames (1, 5, 9, 13, 17, ...).
*Frames kept* takes the first {WAN_FRAMES} frames of the video (T = 5); set its length to another
1 + 4 (T - 1). A clip shorter than that is refused by the sampler before the first step, naming both counts.

**Cost and memory** (not yet measured with the real weights): guidance decodes and scores every frame
at each guided step, so its cost and its memory grow with the frame count, each frame about what one
guided picture of this size costs (x0 mode, losses at 384 px), on top of the 1.3B model (2.6 GB in fp16)
and umT5-XXL (6.7 GB in fp8, needed only while the prompts are encoded). The decoder's backward pass holds
the whole clip at once (no chunking yet): for longer or larger clips lower *loss_resolution*, the size or
the frame count. *xt* mode adds a backward pass through the transformer: use x0.

**Defaults**: sampling as ComfyUI's Wan 2.1 template (ModelSamplingSD3 shift {WAN_SHIFT:g}, {WAN_STEPS} steps,
cfg {WAN_CFG:g}, uni_pc + simple); the result is written at {WAN_FPS:g} fps (Wan's rate and the sample
clip's: set *Frames to video* to your clip's rate); guidance x0, scale 0.3, window 0-0.7, loss_resolution 384.
"""

WAN_MODELS = f"""
**Model files** (put them where ComfyUI looks):
- `models/diffusion_models/{WAN21_UNET}` ({WAN_HF}/diffusion_models)
- `models/text_encoders/{WAN21_TEXT_ENCODER}` ({WAN_HF}/text_encoders; CLIPLoader type wan)
- `models/vae/{WAN21_VAE}` ({WAN_HF}/vae)
- `models/vae_approx/{LIGHTTAEW2_1}` (lightx2v/Autoencoders; VAELoader lists it as is)
- `models/vgg/{VGG_FILE}`: torchvision's VGG19 (download.pytorch.org/models/{VGG_FILE})
- `models/open_clip/{OPEN_CLIP_FILE}`: open_clip ViT-B-32 laion2b_s34b_b79k
  (hf.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K, `open_clip_model.safetensors`, renamed)

**Inputs**: the sample clip `{CONTENT_CLIP}` and the style picture are in ComfyUI's `input/` folder
(the pack copies them there when it loads); pick your own in Load Video and Load Image. The result is
saved as an MP4 by Save Video.

The headless runner does all of this for you:
`python -m headless style_transfer_wan --content clip.mp4 --style b.png --output out/`
(a folder of frames works too: its pictures in name order).
"""


def style_transfer_wan(g: UIGraph) -> None:
    note = g.note(WAN_INTRO + WAN_MODELS + LOSS_TIPS, 0, height=560)
    video = g.add("LoadVideo", 0, title="Content video", file=CONTENT_CLIP)
    parts = g.add("GetVideoComponents", 0, title="Frames of the video", video=video[0])
    kept = g.add("ImageFromBatch", 0, title="Frames kept: 1 + 4 (T - 1)", image=parts[0], batch_index=0,
                 length=WAN_FRAMES)
    style = g.add("LoadImage", 0, title="Style image", image=STYLE_IMAGE)
    unet = g.add("UNETLoader", 1, unet_name=WAN21_UNET, weight_dtype="default")
    clip = g.add("CLIPLoader", 1, clip_name=WAN21_TEXT_ENCODER, type="wan", device="default")
    vae = g.add("VAELoader", 1, title="Wan 2.1 VAE", vae_name=WAN21_VAE)
    tae = g.add("VAELoader", 1, title="Guidance decoder (lighttaew2_1)", vae_name=LIGHTTAEW2_1)
    model = g.add("ModelSamplingSD3", 2, model=unet[0], shift=WAN_SHIFT)
    pos = g.add("CLIPTextEncode", 2, title="Positive prompt", text="an oil painting, rich colours, visible brush "
                "strokes, steady camera", clip=clip[0])
    neg = g.add("CLIPTextEncode", 2, title="Negative prompt", text=WAN_NEGATIVE, clip=clip[0])
    scaled = g.add("ImageScale", 1, title="Content frames at generation size", image=kept[0],
                   upscale_method="lanczos", width=WAN_WIDTH, height=WAN_HEIGHT, crop="center")
    encode = g.add("VAEEncode", 2, title="Content latent (the start)", pixels=scaled[0], vae=vae[0])
    vgg = g.add("StyleGuidanceVGGLoader", 1, vgg_name=VGG_FILE)
    oclip = g.add("StyleGuidanceOpenCLIPLoader", 1, arch="ViT-B-32", clip_name=OPEN_CLIP_FILE)
    w = SHIPPED_WEIGHTS
    mse = g.add("StyleGuidanceContentMSE", 2, content=scaled[0], weight=w["mse"])
    vggc = g.add("StyleGuidanceVGGContent", 2, content=scaled[0], vgg=vgg[0], weight=w["vgg"], losses=mse[0])
    steady = g.add("StyleGuidanceTemporalConsistency", 2, content=scaled[0], weight=1.0, pool=1, fit="stretch",
                   losses=vggc[0])
    cstyle = g.add("StyleGuidanceCLIPStyle", 3, style=style[0], open_clip=oclip[0], weight=w["clip"], num_cutouts=8,
                   losses=steady[0])
    gram = g.add("StyleGuidanceGramStyle", 3, style=style[0], vgg=vgg[0], weight=w["gram"], losses=cstyle[0])
    sampler = g.add("StyleGuidanceSampler", 4, title="Guided sampler", model=model[0], positive=pos[0],
                    negative=neg[0], latent_image=encode[0], vae=tae[0], losses=gram[0], seed=42, steps=WAN_STEPS,
                    cfg=WAN_CFG, sampler_name="uni_pc", scheduler="simple", denoise=0.7, mode="x0", scale=0.3,
                    start_percent=0.0, end_percent=0.7, loss_resolution=384)
    hop = reroute(g, vae[0])
    decode = g.add("VAEDecode", 4, samples=sampler[0], vae=hop[0])
    # a fixed rate, not GetVideoComponents' fps: that link would cross the loss and sampling columns
    create = g.add("CreateVideo", 5, title="Frames to video", images=decode[0], fps=WAN_FPS)
    save = g.add("SaveVideo", 5, title="Result", video=create[0], filename_prefix="style_guidance/wan",
                 format="auto", codec="auto")
    scores = g.add("StyleGuidanceMeasure", 5, title="Loss terms of the result", image=decode[0], losses=gram[0],
                   seed=0)
    shown = g.add("PreviewAny", 5, title="Loss values", source=scores[0])
    arrange(g, note, [video, parts, kept, style], [[unet, clip, vae, tae], [model, pos, neg, encode], [hop]],
            [scaled, vgg, oclip], [[mse, vggc, steady], [cstyle, gram]], [sampler, decode],
            [create, save, scores, shown], {scores.id: 900.0})
