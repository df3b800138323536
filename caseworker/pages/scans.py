"""The pages of a case's attached form as images, for the case page (signed-in caseworkers
only, like the case page itself). Drawn in the PDF sandbox, never in the web process."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import forms
from caseworker.scanview import FULL_WIDTH, THUMBNAIL_WIDTH, form_file
from caseworker.webcontext import in_transaction, settings
from forms.scan_render import PageUnavailable
from workflow.cases import CaseNotFound


async def form_page_image(request: Request) -> Response:
    ref = request.path_params["ref"]
    number = int(request.path_params["page"])
    width = FULL_WIDTH if request.query_params.get("size") == "full" else THUMBNAIL_WIDTH
    try:
        data = await in_transaction(
            request, form_file, settings(request).raw_dir, ref, settings(request).message_seconds
        )
    except CaseNotFound as missing:
        raise HTTPException(status_code=404, detail=str(missing)) from None
    if data is None or number < 1:
        raise HTTPException(status_code=404, detail="There is no such page.")
    try:
        page = await run_in_threadpool(forms.render_page, data, number - 1, width)
    except PageUnavailable:
        raise HTTPException(status_code=404, detail="That page cannot be shown.") from None
    return Response(
        page.png,
        media_type="image/png",
        # Images of signed forms: kept out of the browser's cache, as the pages are.
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


routes = [
    Route("/cases/{ref}/form-pages/{page:int}.png", form_page_image, methods=["GET"]),
]
