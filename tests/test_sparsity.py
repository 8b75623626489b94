"""bigaccel.sparsity: 2:4 magnitude pruning and masks from torch.nn.utils.prune."""
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from bigaccel import reference, sparsity


def test_prune_2_4_keeps_the_two_largest_of_each_group():
    w = torch.tensor([[1.0, -4.0, 3.0, 2.0, 0.5, 0.0, -0.1, 7.0]])
    assert torch.equal(sparsity.prune_2_4(w), torch.tensor([[0.0, -4.0, 3.0, 0.0, 0.5, 0.0, 0.0, 7.0]]))
    w = torch.randn(9, 36)
    p = sparsity.prune_2_4(w)
    assert reference.is_2_4_sparse(p) and sparsity.violating_fraction(p) == 0.0
    kept = (p != 0).reshape(9, 9, 4)
    smallest_kept = torch.where(kept, w.abs().reshape(9, 9, 4), torch.inf).amin(-1)
    largest_dropped = torch.where(~kept, w.abs().reshape(9, 9, 4), -torch.inf).amax(-1)
    assert bool((smallest_kept >= largest_dropped).all())
    with pytest.raises(ValueError, match="multiple of 4"):
        sparsity.prune_2_4(torch.randn(3, 6))


def test_prune_model_gives_an_ordinary_pruned_model():
    model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 6), nn.Linear(6, 4))
    report = sparsity.prune_model(model, "2:4", filter_fn=lambda m, name: name != "2")
    assert report == {"0": 0.0}  # "2" filtered out; "3" has in_features 6
    assert hasattr(model[0], "weight_mask") and hasattr(model[0], "weight_orig")
    assert reference.is_2_4_sparse(model[0].weight) and not hasattr(model[2], "weight_mask")
    with pytest.raises(ValueError, match="2:4"):
        sparsity.prune_model(model, "1:2")


def test_existing_masks_2_4_kept_and_violations_reported():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 8), nn.Linear(16, 8))
    mask = sparsity.mask_2_4(torch.randn(8, 16))
    prune.custom_from_mask(model[0], "weight", mask)
    prune.l1_unstructured(model[1], "weight", amount=0.3)  # not 2:4
    fraction = sparsity.violating_fraction(model[1].weight_mask)
    assert 0 < fraction < 1
    with pytest.raises(ValueError, match=f"{fraction:.1%}"):
        sparsity.prune_model(model)
    before = model[1].weight_mask.clone()
    assert sparsity.prune_model(model, on_violation="keep") == {"0": 0.0, "1": fraction}
    assert torch.equal(model[0].weight_mask, mask) and torch.equal(model[1].weight_mask, before)
    sparsity.prune_model(model, on_violation="reprune")
    assert reference.is_2_4_sparse(model[1].weight)
    assert not bool(((model[1].weight != 0) & (before == 0)).any())  # the old mask still applies
