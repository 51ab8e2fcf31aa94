"""Ray resources fedmr-ray's clusters declare, without importing Ray.

DRIVER_RESOURCE: a custom resource only the head node of a rendered cluster offers (k8s render
sets it in the head's rayStartParams). A sweep's trial drivers (and so their coordinators, which
follow them) each take a sliver of it: they run on the head, beside the results volume and the
objects that must outlive the workers, never on a worker that may be preempted. Where no node
offers it (a local Ray), they go wherever Ray puts them.
"""

DRIVER_RESOURCE = "fedmr_driver"
DRIVER_SLOTS = 1000  # how much of it the head offers
DRIVER_SHARE = 1  # how much a trial's driver takes: up to DRIVER_SLOTS trials at once
