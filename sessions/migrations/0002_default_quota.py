from django.db import migrations


def create_default_quota(apps, schema_editor):  # type: ignore[no-untyped-def]
    Quota = apps.get_model("preview_sessions", "Quota")
    if not Quota.objects.filter(user_id__isnull=True).exists():
        Quota.objects.create(user_id=None)


def delete_default_quota(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("preview_sessions", "Quota").objects.filter(user_id__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("preview_sessions", "0001_initial")]

    operations = [migrations.RunPython(create_default_quota, delete_default_quota)]
