"""HTML pages for runs, under /projects/<id>/runs/: the run list and run page, the new-analysis form, and the
workspace of a run (Analysis, a neuron's page, Ablation, Manipulation, downloads)."""

from django.urls import path

from analysis.workspace.ablation import views as ablation
from analysis.workspace.downloads import views as downloads
from analysis.workspace.explore import views as explore
from analysis.workspace.manipulation import views as manipulation
from analysis.workspace.neuron import views as neuron
from analysis.runs import views as new_run
from analysis.workspace.run import views as runs

app_name = "analysis"

urlpatterns = [
    path("<int:pk>/runs/", runs.run_list, name="run-list"),
    path("<int:pk>/runs/new/", new_run.new_run, name="run-new"),
    path("<int:pk>/runs/<int:run_id>/", runs.run_detail, name="run-detail"),
    path("<int:pk>/runs/<int:run_id>/cancel/", runs.run_cancel, name="run-cancel"),
    path("<int:pk>/runs/<int:run_id>/retry/", runs.run_retry, name="run-retry"),
    path("<int:pk>/runs/<int:run_id>/analysis/", explore.analysis, name="run-analysis"),
    path("<int:pk>/runs/<int:run_id>/neurons/<str:neuron>/", neuron.neuron_page, name="run-neuron"),
    path("<int:pk>/runs/<int:run_id>/ablation/", ablation.ablation, name="run-ablation"),
    path("<int:pk>/runs/<int:run_id>/manipulation/", manipulation.manipulation, name="run-manipulation"),
    path("<int:pk>/runs/<int:run_id>/downloads/", downloads.downloads, name="run-downloads"),
    path("<int:pk>/runs/new/estimate/", new_run.new_run_estimate, name="run-new-estimate"),
    path("<int:pk>/runs/new/ranking/", new_run.new_run_ranking, name="run-new-ranking"),
]

# The Analysis view's partials (htmx swaps them in; each takes the page's query string)
urlpatterns += [
    path("<int:pk>/runs/<int:run_id>/analysis/rankings/", explore.rankings_partial, name="run-analysis-rankings"),
    path("<int:pk>/runs/<int:run_id>/analysis/neurons/", explore.neurons_partial, name="run-analysis-neurons"),
    path("<int:pk>/runs/<int:run_id>/analysis/workbench/", explore.workbench_partial, name="run-analysis-workbench"),
    path("<int:pk>/runs/<int:run_id>/analysis/map/", explore.map_partial, name="run-analysis-map"),
    path("<int:pk>/runs/<int:run_id>/analysis/typed/", explore.typed_partial, name="run-analysis-typed"),
]

urlpatterns += [
    path("<int:pk>/runs/<int:run_id>/manipulation/output/", manipulation.manipulation_output,
         name="run-manipulation-output"),
    path("<int:pk>/runs/<int:run_id>/manipulation/recipes/", manipulation.recipe_save,
         name="run-manipulation-recipe-save"),
    path("<int:pk>/runs/<int:run_id>/manipulation/recipes/<int:recipe_id>/delete/", manipulation.recipe_delete,
         name="run-manipulation-recipe-delete"),
]

# The Ablation view's partial and downloads
urlpatterns += [
    path("<int:pk>/runs/<int:run_id>/ablation/charts/", ablation.ablation_charts, name="run-ablation-charts"),
    path("<int:pk>/runs/<int:run_id>/ablation/<str:curve_id>/curve.csv", ablation.ablation_csv,
         name="run-ablation-csv"),
    path("<int:pk>/runs/<int:run_id>/ablation/<str:curve_id>/chart.svg", ablation.ablation_svg,
         name="run-ablation-svg"),
]

urlpatterns += [
    path("<int:pk>/runs/<int:run_id>/neurons/<str:neuron>/correlations/", neuron.neuron_correlations,
         name="run-neuron-correlations"),
]

urlpatterns += [
    path("<int:pk>/runs/<int:run_id>/downloads/<int:step_id>/<str:name>", downloads.download, name="run-download"),
]
