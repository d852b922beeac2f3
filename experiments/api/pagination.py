"""Pages of 50, as the browser's lists have; ``?page=N`` and ``?page_size=`` up to 500.

A page past the end answers 404 with the usual error body (DRF's rule), so a client that walks ``next``
links never sees it; ``next`` and ``previous`` are absolute URLs or null.
"""

from __future__ import annotations

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
