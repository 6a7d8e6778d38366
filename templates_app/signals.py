from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from templates_app.models import Template
from templates_app.rendering import template_catalog


@receiver([post_save, post_delete], sender=Template)
def _forget_compiled_templates(**kwargs) -> None:
    template_catalog.clear()
