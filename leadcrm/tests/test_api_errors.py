"""One documented error shape across the API: every error answer is {"error": {"code", "message",
"fields"}}, `fields` maps a name to its messages, and the schema documents each error an operation
can answer with that shape."""

import pytest
from django.urls import reverse
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from leadcrm.api_errors import api_exception_handler


class Address(serializers.Serializer):
    zip_code = serializers.CharField(max_length=5)


class Order(serializers.Serializer):
    quantities = serializers.ListField(child=serializers.IntegerField(min_value=1))
    address = Address()
    parcels = Address(many=True)


def test_nested_field_errors_are_named_by_their_path():
    order = Order(
        data={
            "quantities": [1, 0, "x"],
            "address": {"zip_code": "1234567"},
            "parcels": [{"zip_code": "1"}, {"zip_code": "123456"}],
        }
    )
    assert not order.is_valid()

    response = api_exception_handler(ValidationError(order.errors), {})

    assert response.status_code == 400
    assert response.data == {
        "error": {
            "code": "invalid",
            "message": "The request has invalid fields.",
            "fields": {
                "quantities.1": ["Ensure this value is greater than or equal to 1."],
                "quantities.2": ["A valid integer is required."],
                "address.zip_code": ["Ensure this field has no more than 5 characters."],
                "parcels.1.zip_code": ["Ensure this field has no more than 5 characters."],
            },
        }
    }


@pytest.mark.django_db
def test_every_error_an_operation_documents_has_the_one_shape(staff_client):
    schema = staff_client.get(reverse("api-schema"), {"format": "json"}).json()
    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }

    documented = {name: sorted(code for code in op["responses"] if code >= "400") for name, op in operations.items()}
    shapes = {
        response["content"]["application/json"]["schema"]["$ref"]
        for operation in operations.values()
        for code, response in operation["responses"].items()
        if code >= "400"
    }

    assert shapes == {"#/components/schemas/Error"}
    assert schema["components"]["schemas"]["ErrorBody"]["properties"]["fields"]["additionalProperties"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    # Read from the views' machinery: a key's endpoints can refuse it (401, 403) and throttle it (429);
    # a body may be bad (400), too large (413) or of another type (415); an id in the URL or a page
    # cursor may find nothing (404).
    assert documented["GET /api/v1/campaigns/"] == ["401", "403", "429"]
    assert documented["GET /api/v1/leads/"] == ["400", "401", "403", "404", "429"]
    assert documented["GET /api/v1/leads/{lead_id}/"] == ["401", "403", "404", "429"]
    assert documented["POST /api/v1/leads/"] == ["400", "401", "403", "409", "413", "415", "422", "429"]
    assert documented["POST /api/v1/leads/{lead_id}/outcome/"] == [
        *("400", "401", "403", "404", "409", "413", "415", "429")
    ]
    assert documented["GET /postback/"] == ["400", "401", "404", "409", "429"]  # its token is a field
    assert operations["GET /api/v1/leads/"]["responses"]["429"]["headers"]["Retry-After"]
