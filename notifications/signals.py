from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from delivery.signals import address_rejected
from notifications.models import ApiClient, NotificationType
from notifications.services import catalog, recipients


@receiver([post_save, post_delete], sender=NotificationType)
@receiver([post_save, post_delete], sender=ApiClient)
def _forget_cached_catalog(**kwargs) -> None:
    catalog.clear()


@receiver(address_rejected)
def _flag_rejected_address(sender, *, channel: str, user_id: str, reason: str, **kwargs) -> None:
    recipients.flag_rejected_address(user_id, channel=channel)
