from django.contrib import admin

from templates_app.models import Template


@admin.register(Template)
class TemplateAdmin(admin.ModelAdmin):
    list_display = ("type_key", "channel", "subject", "updated_at")
    list_filter = ("channel",)
    search_fields = ("type_key", "subject")
