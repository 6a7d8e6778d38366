from django.apps import AppConfig


def _republish_after_memory_broker_restart(sender=None, **kwargs) -> None:
    """The embedded profile's in-memory broker starts empty: whatever was queued before the
    restart is published again now, not at its republish deadline."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("memory://"):
        from delivery.services.sweep import republish_all_queued

        republish_all_queued()


def _release_leases_of_dead_processes(**kwargs) -> None:
    """A worker process starts (a replacement for a killed child, or a restarted worker): the
    deliveries dead processes of this host had claimed go out again now, not at lease end."""
    import logging

    from delivery.services.claims import release_leases_of_dead_processes

    try:
        released = release_leases_of_dead_processes()
    except Exception:  # the database may be down; the leases then run out as usual
        logging.getLogger(__name__).warning("could not check for leases of dead worker processes")
        return
    if released:
        logging.getLogger(__name__).warning("took back %d deliveries claimed by worker processes that died", released)


def _refuse_providers_without_credentials() -> None:
    """A channel configured for a provider that cannot work stops every process at start-up,
    with the reason, rather than failing every delivery later."""
    from django.core.exceptions import ImproperlyConfigured

    from delivery.providers.base import check_configuration
    from delivery.services import provider_webhooks

    problems = check_configuration() + provider_webhooks.check_configuration()
    if problems:
        raise ImproperlyConfigured("; ".join(problems))


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery"

    def ready(self) -> None:
        from celery.signals import worker_process_init, worker_ready

        worker_ready.connect(_republish_after_memory_broker_restart, weak=False)
        worker_process_init.connect(_release_leases_of_dead_processes, weak=False)
        _refuse_providers_without_credentials()
