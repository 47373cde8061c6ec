"""Visitor Activity: the page trail the widget reports while a chat is possible (issue 7 point 5)."""
