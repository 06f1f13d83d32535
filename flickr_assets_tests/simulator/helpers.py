"""Small helpers shared by the simulator tests: a flickrapi client pointed at the simulator, raw REST calls."""

import flickrapi
import requests

from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET, Simulator

PIPELINE_EXTRAS = (
    "description,license,date_upload,date_taken,owner_name,original_format,geo,tags,machine_tags,o_dims,views,"
    "media,url_l,url_o"
)


def flickr(sim: Simulator, fmt: str = "parsed-json", key: str = DEMO_API_KEY) -> flickrapi.FlickrAPI:
    """The real flickrapi client talking to the simulator."""
    api = flickrapi.FlickrAPI(key, DEMO_API_SECRET, format=fmt, store_token=False)
    api.REST_URL = sim.rest_url
    return api


def rest(sim: Simulator, session: requests.Session | None = None, **args: object) -> requests.Response:
    """A plain GET to the REST endpoint with the demo key (JSON without callback unless told otherwise)."""
    params = {"api_key": DEMO_API_KEY, "format": "json", "nojsoncallback": "1", **args}
    return (session or requests).get(sim.rest_url, params=params, timeout=30)


def search_json(sim: Simulator, session: requests.Session | None = None, **args: object) -> dict:
    response = rest(sim, session, method="flickr.photos.search", **args)
    assert response.status_code == 200, response.text[:200]
    body = response.json()
    assert body["stat"] == "ok", body
    return body["photos"]
