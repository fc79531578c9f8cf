"""PEFT LoRA on FastBltForCausalLM: targets, save/reload, merge, frozen patcher untouched."""

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from blt_hf import FastBltConfig, FastBltForCausalLM
from blt_hf.lora import LORA_ATTENTION_MLP, lora_target_modules

from conftest import random_ids, tiny_blt_fields


def _base():
    torch.manual_seed(0)
    return FastBltForCausalLM(FastBltConfig(**tiny_blt_fields())).eval()


def _adapted_names(peft_model):
    return [n for n, _ in peft_model.named_modules() if n.endswith(".lora_A")]


def _perturb_lora_b(peft_model):
    # lora_B starts at zero (adapter = identity); make it non-trivial so the round trip means something.
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.05)


def test_peft_all_linear_reaches_patcher_but_our_targets_do_not():
    stock = _adapted_names(get_peft_model(_base(), LoraConfig(target_modules="all-linear", r=2)))
    assert any(".patcher." in n for n in stock)  # why the helper exists
    for names in (LORA_ATTENTION_MLP, "all-linear"):
        ours = _adapted_names(get_peft_model(_base(), LoraConfig(target_modules=lora_target_modules(_base(), names),
                                                                 r=2)))
        assert ours and not any(".patcher." in n or n.endswith("lm_head.lora_A") for n in ours)
    assert len(ours) == len([n for n in stock if ".patcher." not in n])


def test_lora_config_without_targets_adapts_attention_and_mlp_not_the_patcher():
    default = _adapted_names(get_peft_model(_base(), LoraConfig(r=2)))
    explicit = _adapted_names(get_peft_model(_base(), LoraConfig(target_modules=lora_target_modules(), r=2)))
    assert default == explicit
    leaves = {n.rsplit(".", 2)[-2] for n in default}
    assert leaves == set(LORA_ATTENTION_MLP)
    assert not any(".patcher." in n for n in default)


def test_lora_save_reload_merge_roundtrip(tmp_path):
    ids = random_ids(2, 24)
    base = _base()
    patcher_before = {k: v.clone() for k, v in base.model.patcher.state_dict().items()}
    peft_model = get_peft_model(base, LoraConfig(target_modules=lora_target_modules(base), r=4, lora_alpha=8))
    _perturb_lora_b(peft_model)
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(input_ids=ids).logits
        assert not torch.allclose(adapted, _base()(input_ids=ids).logits)
    peft_model.save_pretrained(tmp_path / "adapter")

    reloaded = PeftModel.from_pretrained(_base(), tmp_path / "adapter").eval()
    merged = reloaded.merge_and_unload().eval()
    with torch.no_grad():
        torch.testing.assert_close(PeftModel.from_pretrained(_base(), tmp_path / "adapter").eval()(input_ids=ids).logits,
                                   adapted)
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted, atol=1e-4, rtol=1e-4)
    for k, v in merged.model.patcher.state_dict().items():
        assert torch.equal(v, patcher_before[k]), k
    assert not any(p.requires_grad for p in peft_model.base_model.model.model.patcher.parameters())
