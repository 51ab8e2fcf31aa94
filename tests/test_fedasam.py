"""FedASAM's local rule: ASAM's gradient on a hand-made case, and training with it."""

from types import SimpleNamespace

import torch
import torch.nn.functional as F

from fedmr_ray.algorithms.fedasam import AdaptiveSharpnessRule


def small_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))


def test_the_step_takes_the_gradient_at_the_adaptively_scaled_ascent_point():
    model, rho, eta = small_model(), 0.1, 0.01
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    g = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    rule = AdaptiveSharpnessRule(rho, eta)
    run = SimpleNamespace(model=model, params=params, scratch={})
    assert rule.loss(run, x, y, None, None) is None
    ours = rule.grads(run, list(g))
    # by hand: T = |w| + eta for the weights (entries 0 and 2), 1 for the biases
    t = [before[0].abs() + eta, None, before[2].abs() + eta, None]
    tg = [gi if ti is None else gi * ti for gi, ti in zip(g, t)]
    norm = torch.sqrt(sum((v ** 2).sum() for v in tg))
    eps = [(v if ti is None else v * ti) * rho / norm for v, ti in zip(tg, t)]
    shifted = {name: (b + e).requires_grad_() for name, b, e in zip(dict(model.named_parameters()), before, eps)}
    expected = torch.autograd.grad(F.cross_entropy(torch.func.functional_call(model, shifted, (x,)), y),
                                   list(shifted.values()))
    for a, b in zip(ours, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    assert any(not torch.allclose(a, b) for a, b in zip(ours, g))  # not the plain gradient
    for p, b in zip(params, before):  # the model is back at w (to rounding), where SGD steps
        torch.testing.assert_close(p.detach(), b, rtol=0, atol=1e-7)
    assert run.scratch == {}
