"""Features computed from raw material: utterance vectors from transcripts with an offline sentence encoder,
and the context-free baselines that read them."""

from mcef.features.baselines import BaselineResult, logistic_baseline
from mcef.features.text import (
    DEFAULT_ENCODER,
    ENCODERS,
    EncoderSpec,
    TextFeatureConfig,
    cache_key,
    cache_path,
    cached_text_features,
    encoder_path,
    encoder_version,
    extract_text_features,
    load_encoder,
    normalize_text,
    read_transcript_csv,
    read_transcripts,
)

__all__ = [
    "BaselineResult", "DEFAULT_ENCODER", "ENCODERS", "EncoderSpec", "TextFeatureConfig", "cache_key", "cache_path",
    "cached_text_features", "encoder_path", "encoder_version", "extract_text_features", "load_encoder",
    "logistic_baseline", "normalize_text", "read_transcript_csv", "read_transcripts",
]
