"""Using a trained model: export a checkpoint to a folder, transcribe or chat about audio."""
