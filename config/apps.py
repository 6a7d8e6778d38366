from django.apps import AppConfig
from django.core.signals import setting_changed


def _reset_shard_table(*, setting, **kwargs):
    if setting in {"SHARD_BUCKET_MAP", "SHARD_ALIASES", "DATABASES"}:
        from config.sharding import reset_shard_table

        reset_shard_table()


class ConfigConfig(AppConfig):
    name = "config"
    verbose_name = "Platform"

    def ready(self) -> None:
        setting_changed.connect(_reset_shard_table)
