import os

from django.shortcuts import render


def index(request):
    return render(request, "index.html", {"workers": os.environ.get("WEB_CONCURRENCY")})
