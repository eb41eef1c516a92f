"""The API's page-number pagination, strict about its parameter."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class StrictPageNumberPagination(PageNumberPagination):
    """``?page=`` is absent or one whole number from 1: anything else is a 400 field error (DRF would read
    ``page=`` as 1, ``page=0`` or ``page=x`` as a missing page, and use the last of repeated values). A page past
    the last one is 404."""

    def get_page_number(self, request, paginator):
        values = request.query_params.getlist(self.page_query_param)
        if not values:
            return 1
        if len(values) > 1 or not values[0].isascii() or not values[0].isdigit() or int(values[0]) < 1:
            raise ValidationError({self.page_query_param: ["Give one page number: a whole number, 1 or more."]})
        return int(values[0])

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = "Page number, from 1 (the default). Past the last page: 404."
        return parameters
