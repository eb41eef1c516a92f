"""``{% provenance_for step as provenance %}``: what ``_provenance.html`` shows, for views that pass a step."""

from django import template

from analysis.steps.provenance import provenance_of

register = template.Library()


@register.simple_tag
def provenance_for(step, neuron=None):
    return provenance_of(step, neuron=neuron) if step else None
