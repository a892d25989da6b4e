from django.apps import AppConfig


class ToolsConfig(AppConfig):
    name = "tools"
    verbose_name = "Tools and roles"

    def ready(self) -> None:
        # Importing the catalogue fills the registry; it must happen before anything asks for a tool.
        from tools import catalogue  # noqa: F401
