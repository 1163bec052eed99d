"""Applications built on the layers below: the demo, benchmarks, bag replay and its evaluation, teacher targets from
bags, the distillation study."""
