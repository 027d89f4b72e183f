"""Networks as pure ``nn.Module`` s built from configuration lists: VGG (:mod:`.vgg`), the Johnson et al.
transform network (:mod:`.transformer`), and the ImageNet class names (:mod:`.imagenet`). They know nothing of
weights files, training or losses."""
