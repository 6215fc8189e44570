from django.db import connection
from django.http import JsonResponse

from .models import Greeting


def db(request):
    """As the getting-started app's /db/: record a greeting, list them all. It also says
    whether the database connection is encrypted, as Heroku Postgres requires."""
    Greeting.objects.create()
    with connection.cursor() as cursor:
        cursor.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        ssl, version = cursor.fetchone()
    return JsonResponse({"greetings": Greeting.objects.count(), "ssl": ssl, "tls": version})
