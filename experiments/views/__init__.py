"""Server-rendered pages. Each lookup goes through ``visible_to(request.user)``: other teams' objects 404."""
