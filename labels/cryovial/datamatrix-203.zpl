^XA
^CI28
^PW256
^LL104
^LH0,0
^FO8,8^BXN,3,200^FH^FD${barcode}^FS
^FO84,6^A0N,16,9^FH^FD${barcode}^FS
^FO84,24^A0N,20,12^FH^FD${study_id}^FS
^FO84,46^A0N,16,8^FH^FD${timepoint}^FS
^FO172,46^A0N,16,10^FB72,1,0,R^FH^FD${position}^FS
^FO84,64^A0N,16,9^FH^FD${material} ${aliquot_type}^FS
^FO84,84^A0N,16,8^FH^FD${date}^FS
^XZ
