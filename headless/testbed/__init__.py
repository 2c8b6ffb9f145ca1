"""A real ComfyUI for the runner's local back end, the tests and the benchmarks, and what they run on it.

- :mod:`.base`: the private base folder (the pack linked into ``custom_nodes``), ComfyUI's settings,
  its node loader, model folders;
- :mod:`.inprocess`: ComfyUI's own validator and executor in this process, its log, progress, interrupts;
- :mod:`.server`: ``main.py`` as a server process, HTTP helpers, ``/history`` reading;
  :mod:`.events`: its websocket events;
- :mod:`.standin_nodes`: the ``SGTest*`` nodes (copied by path into a test base's ``custom_nodes``);
- :mod:`.graphs`, :mod:`.family_graphs`: API-format prompts the tests and benchmarks run;
- :mod:`.standins`: tiny seeded model files ComfyUI's loaders accept.

The only part of ``headless/`` that touches ComfyUI's internals (``comfy.cli_args``, ``comfy.utils``,
``comfy.model_management``, ``comfy_execution``, ``folder_paths``, ``utils.extra_config``,
``execution``, ``server``). The runner (``headless/`` itself) uses :mod:`.base`, :mod:`.inprocess`
and the stand-ins of its tiny mode; the pack never imports any of it.
"""
