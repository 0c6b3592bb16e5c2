import threading

import torch

from langchain_steer import SteeringVector
from langchain_steer.layers import find_layers, hidden_size


def random_vector(model, name="cost", layers=(0, 1), seed=0, functional_range=4.0):
    generator = torch.Generator().manual_seed(seed)
    size = hidden_size(model)
    directions = {}
    for layer in layers:
        d = torch.randn(size, generator=generator)
        directions[layer] = d / d.norm()
    return SteeringVector(
        directions,
        name=name,
        model_id="tiny",
        poles=("budget", "luxury"),
        functional_range=functional_range,
    )


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def all_layers(model):
    return tuple(range(len(find_layers(model))))


def run_in_threads(target, count, timeout=None):
    """Run ``target(i)`` for i in range(count), each in its own thread, all started before any is joined."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
