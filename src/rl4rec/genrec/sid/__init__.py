"""Semantic IDs: text embeddings, RQ-KMeans (plain and balanced), RQ-VAE, collision handling.

Only the codec is imported eagerly (the data layer uses it); the builders live in
:mod:`rl4rec.genrec.sid.text`, :mod:`~rl4rec.genrec.sid.rqkmeans`, :mod:`~rl4rec.genrec.sid.rqvae`
and :mod:`~rl4rec.genrec.sid.build`.
"""

from rl4rec.genrec.sid.codec import LETTERS, SIDCodec, SIDFormatError, add_extra_level, parse_sid, reassign_last_level

__all__ = ["LETTERS", "SIDCodec", "SIDFormatError", "add_extra_level", "parse_sid", "reassign_last_level"]
