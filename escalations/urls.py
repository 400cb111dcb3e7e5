from django.urls import path

from escalations import views

app_name = "escalations"
urlpatterns = [
    path("escalations/", views.queue, name="queue"),
]
