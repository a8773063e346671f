"""Latent reasoning before the item (LatentR³-style; spec ``latent_reasoning.md``).

Title-generation recommendation with one (or N) latent "thought" vectors made by a single
attention layer over the LM's prompt states, trained by SFT and then by noise-GRPO with the LM
frozen. Modules: :mod:`.prompts` (the §1.6 prompt), :mod:`.titles` (title grounding and the title
trie), :mod:`.module` (the latent attention layer), :mod:`.model` (prompt-once KV-cache passes),
:mod:`.decode` (trie-constrained beam search), :mod:`.evaluate` (title metrics, popularity
groups, MostPop), :mod:`.sft`, :mod:`.advantages`, :mod:`.grpo`, :mod:`.cli`.
"""
