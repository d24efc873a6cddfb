"""The pieces of the trainer (equisweep/train.py), one job each and framework-free (no Ray):

data.py        the training batches (window sampler, augmentation) and fixed eval sets
progress.py    a trial's running counters (FLOPs, wall, train loss) and its metric rows
checkpoint.py  writing and reading checkpoint folders
stack.py       K trials that differ only in hparams trained as one stack (iter_stack, run_stack)
vmapped.py     the stacked model (one vmap of functional_call) and its optimizer, StackedAdamW
"""
