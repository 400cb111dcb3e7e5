from django.urls import path

from analytics import api, views

app_name = "analytics"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("card", views.card, name="card"),
    path("flowpilot/escalations", api.flowpilot_escalations, name="flowpilot_escalations"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("baseline/", views.baseline_list, name="baseline"),
    path("baseline/new", views.baseline_create, name="baseline_create"),
    path("baseline/<int:pk>/edit", views.baseline_edit, name="baseline_edit"),
    path("baseline/<int:pk>/delete", views.baseline_delete, name="baseline_delete"),
]
