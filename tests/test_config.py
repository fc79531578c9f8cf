"""Config validation: every invalid value names its field; derived fields survive save/load."""

import pytest
from huggingface_hub.errors import StrictDataclassError

from blt_hf import FastBltConfig

INVALID = [
    (dict(mask_token_id=260), "mask_token_id=260 is outside the vocabulary"),
    (dict(pad_token_id=-1), "pad_token_id=-1 is outside the vocabulary"),
    (dict(bos_token_id=999), "bos_token_id=999"),
    (dict(eos_token_id=300), "eos_token_id=300"),
    (dict(vocab_size=3), "vocab_size must be >= 5"),
    (dict(diffusion_block_size=-1), "diffusion_block_size must be >= 0"),
    (dict(diffusion_loss_weight=0.0), "diffusion_loss_weight must be > 0"),
    (dict(cross_attn_k=0), "cross_attn_k must be >= 1"),
    (dict(max_patch_length=0), "max_patch_length must be None or >= 1"),
    (dict(local_attention_window_len=0), "local_attention_window_len must be None or >= 1"),
    (dict(patching_mode="space"), "patching_mode must be 'entropy' or 'byte'"),
    (dict(patching_threshold=float("nan")), "patching_threshold must be a number"),
    (dict(encoder_hash_byte_group_size=[3, 0]), "encoder_hash_byte_group_size"),
    (dict(encoder_hash_byte_group_vocab=0), "encoder_hash_byte_group_vocab must be >= 1"),
    (dict(encoder_hash_byte_group_nb_functions=0), "encoder_hash_byte_group_nb_functions must be >= 1"),
    (dict(max_position_embeddings=0), "max_position_embeddings must be positive"),
    (dict(encoder_config=dict(hidden_size=30, num_attention_heads=4), decoder_config=dict(hidden_size=30)),
     r"fast_blt_local_encoder.hidden_size \(30\) must be divisible by"),
    (dict(global_config=dict(hidden_size=-8)), "fast_blt_global_transformer.hidden_size must be a positive"),
    (dict(decoder_config=dict(num_hidden_layers=0)), "fast_blt_local_decoder.num_hidden_layers must be a positive"),
    (dict(patcher_config=dict(num_attention_heads=4, num_key_value_heads=3)), "must be a multiple of"),
    (dict(patcher_config=dict(intermediate_size=-1)), "fast_blt_patcher.intermediate_size"),
    (dict(encoder_config=dict(hidden_size=24, num_attention_heads=8), decoder_config=dict(hidden_size=24)), "head dim"),
    (dict(decoder_config=dict(rms_norm_eps=0.0)), "rms_norm_eps must be > 0"),
    (dict(global_config=dict(dropout=1.5)), "dropout must be in"),
    (dict(global_config=dict(hidden_act="gelu")), "hidden_act must be 'silu'"),
    (dict(encoder_config=dict(hidden_size=64)), r"decoder_config.hidden_size \(256\) must equal"),
    (dict(patcher_config=dict(vocab_size=256)), r"patcher_config.vocab_size \(256\) must equal"),
    (dict(global_config=dict(num_attention_heads=0)), "fast_blt_global_transformer.num_attention_heads must be a pos"),
    (dict(global_config=dict(num_key_value_heads=0)), "fast_blt_global_transformer.num_key_value_heads must be a po"),
    (dict(decoder_config=dict(intermediate_size=0)), "fast_blt_local_decoder.intermediate_size must be a positive"),
    (dict(encoder_hash_byte_group_size=[]), "encoder_hash_byte_group_size must be a non-empty list"),
    (dict(global_config=dict(rope_parameters=dict(rope_theta=0.0))), r"rope_theta'\] must be > 0, got 0.0"),
    (dict(encoder_config=dict(rope_parameters=dict(rope_theta=-5.0))), r"rope_theta'\] must be > 0, got -5.0"),
    (dict(diffusion_block_input="hash"), "diffusion_block_input must be one of"),
    (dict(diffusion_distill_weight=-0.1), r"diffusion_distill_weight must be in \[0, 1\], got -0.1"),
    (dict(diffusion_distill_weight=1.5), r"diffusion_distill_weight must be in \[0, 1\], got 1.5"),
]


@pytest.mark.parametrize("kwargs,message", INVALID, ids=[m[:40] for _, m in INVALID])
def test_invalid_values_name_their_field(kwargs, message):
    with pytest.raises(StrictDataclassError, match=message):
        FastBltConfig(**kwargs)


def test_wrong_type_is_rejected():
    with pytest.raises(StrictDataclassError):
        FastBltConfig(diffusion_block_size="eight")


def test_save_load_round_trip(tmp_path):
    config = FastBltConfig(diffusion_block_size=8, cross_attn_k=4, global_config=dict(hidden_size=512),
                           patcher_config=dict(hidden_size=64, num_attention_heads=2))
    config.save_pretrained(tmp_path)
    loaded = FastBltConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert loaded.global_config.encoder_cross_output_size == 256 * 4
    assert loaded.decoder_config.hidden_size_global == 512
    assert loaded.patcher_config.rope_parameters["rope_theta"] == 10000.0


def test_sub_config_edited_after_construction_fails_validate():
    config = FastBltConfig()
    config.encoder_config.num_attention_heads = 3
    with pytest.raises(StrictDataclassError, match=r"must be divisible by fast_blt_local_encoder.num_attention_heads"):
        config.validate()
    config.encoder_config.num_attention_heads = 8
    config.validate()
    assert config.encoder_config.head_dim == 32  # derived on read: never stale


@pytest.mark.parametrize("field", ["patching_threshold", "max_patch_length", "encoder_hash_byte_group_vocab"])
def test_loading_a_config_without_a_trained_field_names_it(tmp_path, field):
    import json

    FastBltConfig(max_patch_length=8).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    del data[field]
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f"the saved config lacks {field}"):
        FastBltConfig.from_pretrained(tmp_path)
    assert FastBltConfig().patching_threshold is not None  # building in code keeps the defaults


def test_corrupt_weights_fail_loudly_on_load(tmp_path):
    from conftest import save_tiny_blt_d

    from blt_hf import FastBltForCausalLM

    path = save_tiny_blt_d(tmp_path / "m", block_size=4)
    FastBltForCausalLM.from_pretrained(path)  # whole file: loads
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 4096] = b"\xff" * 4096  # NaN bit patterns over some weights
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="non-finite logits on a probe input"):
        FastBltForCausalLM.from_pretrained(path)


def test_building_a_model_revalidates_an_edited_config():
    from conftest import tiny_blt_fields

    from blt_hf import FastBltForCausalLM

    config = FastBltConfig(**tiny_blt_fields())
    config.decoder_config.num_attention_heads = 3
    with pytest.raises(StrictDataclassError, match="must be divisible by fast_blt_local_decoder.num_attention_heads"):
        FastBltForCausalLM(config)
