from django.apps import AppConfig


def _republish_after_memory_broker_restart(sender=None, **kwargs) -> None:
    """The embedded profile's in-memory broker starts empty: whatever was queued before the
    restart is published again now, not at its republish deadline."""
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("memory://"):
        from delivery.services.sweep import republish_all_queued

        republish_all_queued()


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Delivery"

    def ready(self) -> None:
        from celery.signals import worker_ready

        worker_ready.connect(_republish_after_memory_broker_restart, weak=False)
