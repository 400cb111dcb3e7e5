from django.urls import path

from flowpilot import views

app_name = "flowpilot"
urlpatterns = [
    path("", views.sessions, name="sessions"),
]
