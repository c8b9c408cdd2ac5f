# Models arrive with their issues; see DESIGN.md.
