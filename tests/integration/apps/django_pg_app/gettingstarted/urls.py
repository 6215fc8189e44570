import hello.views
from django.urls import path

urlpatterns = [path("db/", hello.views.db, name="db")]
