"""Tiny, seeded, random-weight model files that ComfyUI's own loaders accept: the stand-ins.

Nothing is downloaded. Files are written under a models folder laid out like ComfyUI's
(``checkpoints``, ``diffusion_models``, ``vae``, ``vae_approx``, ``text_encoders``, ``vgg``,
``open_clip``, ``loras``, ``controlnet``). Two uses: the tests' own model set
(:mod:`.suite_models`), and stand-ins written under the exact file names a shipped workflow expects
(:mod:`.install`), so that the runner, the tests and the browser test execute real workflows on a
machine without real weights. Building needs ComfyUI importable (after
:func:`headless.testbed.base.configure_comfy`); :mod:`.names` does not.

Modules:

- :mod:`.common`: seeded fill, fp16 state dicts, output/decoder calibration, the ONE cache folder
  (one version) with its atomic :func:`~.common.cached`, and :func:`~.common.place`;
- :mod:`.decoders`: the one TAESD pair builder, TAESDs as full VAE files, the one KL VAE builder;
- :mod:`.loss_nets`: VGG19 and open_clip stand-ins and their scoring twins;
- :mod:`.text_encoders`: CLIP-L and the T5 placeholder;
- :mod:`.family` (the :class:`~.family.Family` record) and one module per diffusion family:
  :mod:`.sd15`, :mod:`.sd2`, :mod:`.sdxl`, :mod:`.sd3`, :mod:`.flux`, :mod:`.qwen_image`, :mod:`.wan21` (video;
  Qwen-Image's decoders), and the tiny DiTs
  :mod:`.z_image`, :mod:`.flux2` (with Flux.2's narrow VAE), :mod:`.chroma`, :mod:`.lumina2`, :mod:`.hidream`,
  :mod:`.omnigen2`, built through ComfyUI's classes by :mod:`.dit` (detection forces real widths on them;
  ``headless/testbed/standin_dit_nodes.py`` loads them); :mod:`.families` is their registry;
- :mod:`.extras`: the SD1.5 ControlNet and LoRAs;
- :mod:`.names`: model file names and the "real file name -> stand-in" tables (no torch);
- :mod:`.install`: stand-ins under a workflow's own names, and tiny mode's input changes;
- :mod:`.tiny_text`: tiny mode's seeded conditioning in place of text encoders that cannot shrink
  (a table by CLIPLoader type; no torch);
- :mod:`.tiny_dit`: tiny mode's test loaders (SGTestDiTLoader, SGTestKLVAE) in place of UNETLoader /
  VAELoader for stand-ins those would build at full size, and both rewrites together (no torch);
- :mod:`.suite_models`: the tests' model set and the families' set.

Adding a model family (recipe):

1. Write ``standins/<family>.py``: a builder ``def <family>_net(seed) -> nn.Module`` that makes the
   smallest network ComfyUI's detection (``comfy.model_detection``) still recognises as the family,
   fills it with :func:`~.common.seeded_fill_` and rescales its last layer with
   :func:`~.common.calibrate_output` (unit-RMS prediction on unit-variance inputs); and
   ``FAMILY = Family(key, label, comfy_config, latent_format, latent_channels, taesd, vae_scale,
   vae_shift, folder, file, context_dim, pooled_dim, ..., build=<family>_net, seed=<unused seed>)``.
   Say in its docstring what ComfyUI's detection forces (sizes, keys). Where detection forces a size
   no CPU test affords, describe it as a :class:`~.dit.DiTSpec` instead (class, sizes, detection keys,
   one calibration forward) and pass ``dit=SPEC``: ``family_graphs`` then loads it with SGTestDiTLoader.
2. Add the module to ``_MODULES`` in :mod:`.families`. :func:`~.families.diffusion_cached` then
   builds it once into the cache, :func:`~.suite_models.build_families` can place it, and
   ``headless/testbed/family_graphs.py`` can build its prompts from the :class:`~.family.Family` record.
3. If shipped workflows name its real files, add the real names to :mod:`.names` (``STANDIN_FOR``)
   and their builders to ``install.STANDINS``; a new TAESD pair goes in ``decoders.TAESD_PAIRS``.
   A text encoder ComfyUI builds at full size (CLIPLoader types such as ``qwen_image``) gets an entry
   in ``tiny_text.FIXED_TEXT_ENCODERS`` with the context width the family's stand-in reads. A tiny
   DiT's real file name goes in ``names.DIT_UNETS`` (tiny mode loads it with SGTestDiTLoader), a narrow
   VAE VAELoader cannot build in ``names.NARROW_VAES`` (SGTestKLVAE).
4. Bump ``common.CACHE_VERSION`` only when an existing stand-in's bytes change.
"""
