"""Teacher-student distillation: layer maps, losses, cached teacher outputs, the DistillModule."""
