"""Submit any experiment's sweep as a submitit job array: locally, in process, or on a SLURM cluster."""
