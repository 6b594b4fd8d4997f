"""Scale-out on Celery: many ``auditor worker`` processes, one broker, one database.

``auditor scan --broker URL`` writes a *batch* (its request and one *job* per site) to the
database, then sends one Celery task per job; workers run each site with the same
:class:`auditor.scanning.Auditor` (engine, policy, bounds, storage) as an in-process scan,
and the client prints the stored results exactly as ``scan`` would.

Correctness rests on the database, not on the broker: a job's finished scan is stored in
the same transaction as a row keyed by the job (``cluster_job_result``, primary key), so a
task delivered twice (late ack, redelivery after a lost worker, a duplicated message) can
never store two finished scans for one job. The broker only carries "please do job K";
Redis and RabbitMQ both work by URL (see :mod:`auditor.cluster.app` for what is Redis-only).

It lives inside the ``auditor`` package (not a top-level ``cluster/``) because it is the
core's own orchestrator run elsewhere: it subclasses :class:`auditor.scanning.Auditor`, writes
through :mod:`auditor.storage`, and ships with ``auditor`` wherever a worker is installed.

Modules: ``app`` (the Celery app and every delivery setting, with why), ``jobs`` (batch and
job bookkeeping), ``politeness`` (per-address leases, per-batch rate), ``worker`` (the task),
``client`` (submit, wait, collect), ``cli`` (``auditor worker``, ``auditor batch``).
"""
