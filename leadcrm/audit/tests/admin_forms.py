"""Posting an admin change page back as a browser would: every field of the form and of its inlines as
the page rendered them, with the changes a test makes."""

from django import forms


def _form_values(form: forms.BaseForm) -> dict:
    data: dict = {}
    for name, field in form.fields.items():
        key = form.add_prefix(name)
        value = form[name].value()
        if isinstance(field.widget, forms.MultiWidget):
            parts = value if isinstance(value, list | tuple) else field.widget.decompress(value)
            data.update({f"{key}_{index}": "" if part is None else part for index, part in enumerate(parts)})
        elif isinstance(field, forms.BooleanField):
            if value:
                data[key] = "on"
        elif isinstance(value, list | tuple):
            data[key] = [str(item) for item in value]
        else:
            data[key] = "" if value is None else value
    return data


def change_form_data(page, **changes) -> dict:
    """The POST of the change page `page` (a test client response) with `changes` (field names, or an
    inline's prefixed names such as prices-0-price)."""
    data = _form_values(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
        data[management.add_prefix("TOTAL_FORMS")] = len(formset.initial_forms)  # no empty extra rows
        for form in formset.initial_forms:
            data.update(_form_values(form))
    data.update(changes)
    return data
