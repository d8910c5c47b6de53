"""The fast formulation computes the article's math: same losses and gradients as the plain one.

Speed must never come from changing the model, so each rewrite is checked
against its textbook form (float64 where rounding could hide a difference).
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vaelab.config import ModelConfig
from vaelab.devices import keep_freed_memory, prepare_for_speed
from vaelab.models import VAE, build
from vaelab.models import textbook as reference
from vaelab.models.blocks import InputConv, Pool, UpConv, glorot_init, patches


@pytest.mark.parametrize("method", ["upsample", "phases", "transposed"])
@pytest.mark.parametrize("padding,size", [(1, 4), (0, 8), (1, 14)])
def test_upconv_equals_upsample_then_conv_forward_and_backward(method, padding, size):
    torch.manual_seed(0)
    fused = UpConv(8, 5, padding=padding, method=method).double()
    plain = nn.Conv2d(8, 5, 3, padding=padding).double()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(3, 8, size, size, dtype=torch.float64, requires_grad=True)
    y_fused = fused(x)
    y_plain = plain(F.interpolate(x, scale_factor=2, mode="nearest"))
    torch.testing.assert_close(y_fused, y_plain, rtol=0, atol=1e-12)
    grads_fused = torch.autograd.grad(y_fused.square().sum(), [x, *fused.parameters()])
    grads_plain = torch.autograd.grad(y_plain.square().sum(), [x, *plain.parameters()])
    for a, b in zip(grads_fused, grads_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("channels", [1, 3])
def test_input_conv_equals_conv2d_forward_and_backward(channels):
    torch.manual_seed(0)
    fast = InputConv(channels, 16).double()
    plain = nn.Conv2d(channels, 16, 3, padding=1).double()
    plain.load_state_dict(fast.state_dict())
    x = torch.rand(4, channels, 28, 28, dtype=torch.float64)
    for needs_input_grad in (False, True):
        a, b = (x.clone().requires_grad_(needs_input_grad) for _ in range(2))
        y_fast, y_plain = fast(a), plain(b)
        torch.testing.assert_close(y_fast, y_plain, rtol=0, atol=1e-12)
        wrt_fast = [*fast.parameters()] + ([a] if needs_input_grad else [])
        wrt_plain = [*plain.parameters()] + ([b] if needs_input_grad else [])
        grads_fast = torch.autograd.grad(y_fast.square().sum(), wrt_fast)
        grads_plain = torch.autograd.grad(y_plain.square().sum(), wrt_plain)
        for g_fast, g_plain in zip(grads_fast, grads_plain, strict=True):
            torch.testing.assert_close(g_fast, g_plain, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("size", [28, 14, 7, 5])
def test_pool_rounds_odd_sizes_up_as_ceil_mode_does(size):
    x = torch.randn(3, 4, size, size, requires_grad=True)
    ceil = x.detach().clone().requires_grad_()
    y, y_ceil = Pool()(x), F.max_pool2d(ceil, 2, ceil_mode=True)
    assert torch.equal(y, y_ceil)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    y_ceil.backward(upstream)
    assert torch.equal(x.grad, ceil.grad)


@pytest.mark.parametrize("padding", [0, 1])
def test_patches_are_unfold(padding):
    x = torch.randn(2, 3, 9, 7)
    assert torch.equal(patches(x, padding), F.unfold(x, 3, padding=padding))


def test_upconv_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="unknown UpConv method"):
        UpConv(8, 8, method="magic")


def test_pool_then_relu_is_bit_identical_to_relu_then_pool():
    x = torch.randn(4, 8, 7, 7)
    x[:, :, :4, :4] = 0.25  # ties inside a pooling window
    x[:, :, 4:, 4:] = -1.0  # windows that are all negative
    pool = nn.MaxPool2d(2, ceil_mode=True)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_fast, y_plain = F.relu(pool(a)), pool(F.relu(b))
    assert torch.equal(y_fast, y_plain)
    upstream = torch.randn_like(y_fast)
    y_fast.backward(upstream)
    y_plain.backward(upstream)
    assert torch.equal(a.grad, b.grad)


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_fast_model_loss_and_gradients_equal_the_plain_reference(name):
    torch.manual_seed(0)
    fast = build(ModelConfig(name=name)).double()
    plain = reference.REFERENCES[name]().double()
    reference.copy_weights(fast, plain)
    x = torch.rand(16, 1, 28, 28, dtype=torch.float64)
    torch.manual_seed(1)
    loss_fast = fast(x).loss
    torch.manual_seed(1)  # the same noise for the VAE's sample
    loss_plain = plain.loss(x)
    torch.testing.assert_close(loss_fast, loss_plain, rtol=1e-12, atol=0)
    loss_fast.backward()
    loss_plain.backward()
    for (key, a), b in zip(fast.named_parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12, msg=key)


@pytest.mark.parametrize("name", ["ae", "vae"])
def test_channels_last_changes_layout_only(name):
    torch.manual_seed(0)
    model = build(ModelConfig(name=name)).to(memory_format=torch.contiguous_format)
    assert not model.decoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(32, 1, 28, 28)
    torch.manual_seed(1)
    before = model(x).per_image_loss
    prepare_for_speed(model, torch.device("cpu"))
    assert model.decoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    torch.manual_seed(1)
    after = model(x).per_image_loss
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-4)


def test_built_models_are_channels_last_with_unchanged_initial_weights():
    torch.manual_seed(0)
    model = build(ModelConfig(name="vae"))
    torch.manual_seed(0)
    plain = VAE(ModelConfig("vae").resolved())
    glorot_init(plain)
    assert model.encoder[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    for (key, a), b in zip(model.state_dict().items(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


def test_keeping_freed_memory_is_safe_to_repeat():
    keep_freed_memory()
    keep_freed_memory()
    assert torch.ones(1 << 20).sum().item() == 1 << 20
