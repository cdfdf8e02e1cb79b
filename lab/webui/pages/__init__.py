"""Page modules, one per area (`router = APIRouter(include_in_schema=False)`), included by
lab/api/app.py beside the API. They call `lab.actions.*` only and render with `lab.webui.render`."""
