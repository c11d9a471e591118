from biobank import create_app

app = create_app()
