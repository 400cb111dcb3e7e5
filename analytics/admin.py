from django.contrib import admin

from analytics.models import BaselineMeasurement


@admin.register(BaselineMeasurement)
class BaselineMeasurementAdmin(admin.ModelAdmin):
    list_display = ["measured_on", "minutes", "account", "timed_by", "note"]
    list_filter = ["account"]
    list_select_related = ["account", "timed_by"]
