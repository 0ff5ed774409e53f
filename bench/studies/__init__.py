"""The libraries of the measurement studies, each given the task registry by its command: cost (the cost pass
of python -m bench.cost), scaling (the cost-scaling study of python -m bench.scaling), harness (the checks of
python -m bench.harness_check) and timm_compare (python -m bench.timm_compare's comparison with timm). They
import no task: the command passes the task registry's create_task in."""
