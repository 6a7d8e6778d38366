import logging

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from delivery.signals import address_rejected, contact_opted_out
from notifications.models import ApiClient, NotificationType
from notifications.services import catalog, recipients

logger = logging.getLogger(__name__)


@receiver([post_save, post_delete], sender=NotificationType)
@receiver([post_save, post_delete], sender=ApiClient)
def _forget_cached_catalog(**kwargs) -> None:
    catalog.clear()


@receiver(address_rejected)
def _flag_rejected_address(sender, *, channel: str, user_id: str, reason: str, **kwargs) -> None:
    recipients.flag_rejected_address(user_id, channel=channel, reason=reason, address=kwargs.get("address"))


@receiver(contact_opted_out)
def _note_opt_out(sender, *, channel: str, reason: str, **kwargs) -> None:
    # Recorded on the delivery (provider_details.opted_out); turning it into a stored
    # preference is the preferences issue's. No user id or address in the log.
    logger.info("a recipient opted out of %s (%s)", channel, reason)
