from django.urls import path

from webhooks import api

urlpatterns = [
    path("endpoints/", api.EndpointListApi.as_view(), name="webhook-endpoints"),
    path("endpoints/<uuid:endpoint_id>/", api.EndpointDetailApi.as_view(), name="webhook-endpoint"),
    path("endpoints/<uuid:endpoint_id>/rotate-secret/", api.EndpointRotateApi.as_view(), name="webhook-rotate"),
    path("deliveries/", api.DeliveryListApi.as_view(), name="webhook-deliveries"),
    path("deliveries/<uuid:delivery_id>/redeliver/", api.DeliveryRedeliverApi.as_view(), name="webhook-redeliver"),
]
