from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from notifications.models import ApiClient, NotificationType
from notifications.services import catalog


@receiver([post_save, post_delete], sender=NotificationType)
@receiver([post_save, post_delete], sender=ApiClient)
def _forget_cached_catalog(**kwargs) -> None:
    catalog.clear()
